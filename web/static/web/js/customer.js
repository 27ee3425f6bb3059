// One customer's conversation with the support team, as both customer
// surfaces show it: the chat page (chat.js) and the website widget's frame
// (widget-frame.js). Timeline, composer, files, search, typing, read
// receipts, the connection and offline banner, and the exact unread badge,
// all wired to the same elements (the same ids in both templates).
//
// What differs between the two is passed in: who may read (the widget
// reads only while it is open), where the badge and new messages go
// besides the header, what "the session ended" and "erased" look like, and
// how files load (the page with its cookie, the widget with its token).

import { api, syncMessages } from "./api.js";
import { AttachmentTray } from "./attachments.js";
import { Composer } from "./composer.js";
import { $, announce, formatAgo, formatFull, h, uuid4 } from "./dom.js";
import { Messenger } from "./messenger.js";
import { Outbox } from "./outbox.js";
import { RatingPrompt } from "./rating.js";
import { SearchBox, snippet } from "./search.js";
import { ParleySocket } from "./socket.js";
import { Thread } from "./thread.js";
import { ConnectionStatus, TypingLine, editMessage, problemBanner } from "./status.js";

export function customerChat({
  config, // {customerId, customerName, socketPath}
  token = null, // the widget's customer token (the page has its cookie)
  mayRead = () => true, // besides being in front: may what is on screen count as read?
  onBadge = () => {}, // (unread) on every change of the exact badge
  onMessage = () => {}, // (message) once for each message that arrives after the first load
  onEnded = () => {}, // the server no longer accepts who we are
  onErased = onEnded, // the customer was erased: the server closed for good (4410)
  files = null, // Thread's `files` (how attachments load without a cookie)
  autofocus = true, // focus the message box after the first load (fine pointers only)
}) {
  const me = { kind: "customer", id: config.customerId, name: config.customerName };
  const socket = new ParleySocket(config.socketPath, { token });
  const outbox = new Outbox(`parley.outbox.customer.${config.customerId}`);
  const messenger = new Messenger({ socket, outbox, sendPath: () => "/api/v1/messages" });
  const list = $("#messages");
  const empty = $("#empty");
  const unreadPill = $("#unread");
  const showProblem = problemBanner($("#problem"));
  const rating = new RatingPrompt();
  const reported = new Set(); // messages onMessage has been told of (or that were there at the first load)
  let loaded = false;

  const thread = new Thread({
    list,
    scroller: $("#thread"),
    jump: $("#jump"),
    me,
    names: { self: "You" },
    files,
    onSeen: (ids) => readIfVisible(ids),
    onEdit: (msg) => composer.startEdit(msg),
    onRetry: (id) => {
      thread.retrying(id);
      messenger.retry(id);
    },
    onDiscard: (id) => {
      messenger.discard(id);
      thread.remove(id);
      refreshEmpty();
    },
  });

  const tray = new AttachmentTray({ tray: $("#attachment-tray"), input: $("#attach-input"), button: $("#attach"), dropTarget: $("#composer") });

  // Search: a result shows who wrote the match and when; choosing it closes
  // the search and brings that message into view.
  const searchPanel = $("#chat-search");
  const search = new SearchBox({
    form: $("#search"),
    input: $("#search-input"),
    list: $("#search-results"),
    status: $("#search-status"),
    path: "/api/v1/messages/search",
    render: (result) => {
      const msg = result.message;
      const at = new Date(msg.sent_at);
      const who = msg.sender.kind === "customer" ? "You:" : `${msg.sender.name || "Support"}:`;
      return h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "search-result chat-search__result", onclick: () => showFound(msg.message_id) },
          h("time", { class: "chat-search__time", datetime: msg.sent_at, title: formatFull(at) }, formatAgo(at)),
          snippet(who, result.highlight),
        ),
      );
    },
  });

  function showFound(messageId) {
    searchPanel.open = false;
    const el = list.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
    if (!el) return;
    el.scrollIntoView({ block: "center" });
    el.classList.add("msg--found");
    setTimeout(() => el.classList.remove("msg--found"), 2000);
  }

  const composer = new Composer({
    form: $("#composer"),
    attachments: tray,
    input: $("#composer-input"),
    button: $("#send"),
    counter: $("#counter"),
    editBanner: $("#edit-banner"),
    onSend: (body, attachments) => {
      const item = { message_id: uuid4(), body, attachments, customer_id: config.customerId, created_at: new Date().toISOString() };
      thread.addPending(item);
      refreshEmpty();
      messenger.send(item);
    },
    onEdit: (id, body) => editMessage(thread, id, body, showProblem),
    onTyping: () => socket.send({ type: "typing" }),
    onEditLast: () => thread.lastEditable(),
    onEditing: (msg) => thread.setEditing(msg ? msg.message_id : null),
  });

  const typing = new TypingLine($("#typing"));
  new ConnectionStatus({ el: $("#connection"), banner: $("#offline"), retry: $("#reconnect"), socket });

  // -- badge ------------------------------------------------------------------

  let unread = null;

  function setBadge(count) {
    const next = Math.max(0, count | 0);
    unreadPill.hidden = next === 0;
    unreadPill.textContent = next === 1 ? "1 unread" : `${next} unread`;
    document.body.dataset.unread = String(next);
    if (next === unread) return;
    unread = next;
    onBadge(next);
  }

  // -- reading ----------------------------------------------------------------

  function readIfVisible(ids) {
    if (document.visibilityState !== "visible" || !mayRead()) return;
    for (const id of ids) {
      const msg = thread.get(id);
      if (msg && msg.sender.kind === "agent" && !msg.read_at) messenger.read(id);
    }
  }

  const readVisible = () => readIfVisible(thread.visibleUnread());
  document.addEventListener("visibilitychange", readVisible);
  socket.addEventListener("live", readVisible);

  function refreshEmpty() {
    empty.hidden = thread.size > 0;
  }

  function report(msg) {
    if (!loaded || reported.has(msg.message_id)) return;
    reported.add(msg.message_id);
    onMessage(msg);
  }

  // -- live frames ------------------------------------------------------------

  socket.addEventListener("frame", (event) => {
    const frame = event.detail;
    switch (frame.type) {
      case "message.sent":
      case "message.edited": {
        const isNew = thread.upsert(frame.message);
        refreshEmpty();
        if (frame.type === "message.sent") report(frame.message);
        if (frame.message.sender.kind === "agent") {
          typing.stop(frame.message.sender.id);
          if (isNew && document.visibilityState !== "visible") announce(`New message from ${frame.message.sender.name || "support"}`);
        }
        break;
      }
      case "message.read":
        thread.markRead(frame.message_id, frame.read_at, frame.position);
        break;
      case "badge":
        setBadge(frame.unread);
        break;
      case "conversation.rating":
        rating.show(frame);
        break;
      case "customer.erased":
        forget(); // the close (4410) follows
        break;
      case "typing":
        if (frame.sender && frame.sender.kind === "agent") typing.start(frame.sender.id, `${frame.sender.name || "Support"} is typing…`);
        break;
      case "error":
        if (frame.code === "unknown_position") resync();
        break;
      default:
        break;
    }
  });

  messenger.addEventListener("sent", (event) => {
    const { message_id: id, message } = event.detail;
    if (message) {
      thread.upsert(message);
      report(message);
    } else {
      thread.confirm(id);
    }
  });
  messenger.addEventListener("failed", (event) => thread.fail(event.detail.message_id, event.detail.detail));
  messenger.addEventListener("waiting", (event) => {
    thread.waiting(event.detail.message_id, event.detail.seconds);
    announce(`You are sending faster than we can take messages. Your message goes out by itself in ${event.detail.seconds} seconds.`);
  });
  messenger.addEventListener("problem", (event) => {
    // unknown_position: the page reloads the conversation; erased: the close that follows says it all.
    if (event.detail.code !== "unknown_position" && event.detail.code !== "erased") showProblem(event.detail.detail);
  });

  socket.addEventListener("unauthorized", () => {
    composer.setEnabled(false);
    onEnded();
  });

  // -- erasure ------------------------------------------------------------------

  // This person was erased (docs/privacy.md): nothing of their conversation
  // stays on the screen or in this browser, and nothing more can be written.
  // The `customer.erased` frame says so, then the server closes the socket
  // with 4410; a page that reconnects after the erasure gets only the close.
  function forget() {
    composer.setEnabled(false);
    composer.draft = "";
    tray.clear();
    outbox.clear(); // unsent messages, kept in localStorage
    thread.clear();
    setBadge(0);
    empty.hidden = true; // the greeting of an empty conversation names them, and asks them to write
    for (const el of document.querySelectorAll("[data-personal]")) el.replaceChildren(); // their name, their email
    rating.show({ asked: false });
    search.clear();
    searchPanel.open = false;
    typing.clear();
  }

  socket.addEventListener("erased", () => {
    forget();
    onErased();
  });

  // -- loading ----------------------------------------------------------------

  async function load() {
    const { messages, position } = await syncMessages("/api/v1/messages");
    for (const msg of messages) {
      thread.upsert(msg);
      messenger.known(msg.message_id);
      reported.add(msg.message_id);
    }
    for (const item of messenger.pending()) {
      thread.addPending(item);
      if (item.failed) thread.fail(item.message_id, item.failed);
    }
    // The badge projection can trail the timeline: read it as of the same position.
    const badge = await api("GET", `/api/v1/badge?min_position=${position}`);
    setBadge(badge.unread);
    await rating.load();
    return position;
  }

  async function resync() {
    socket.stop();
    const position = await load();
    socket.position = position;
    socket.start();
  }

  // Resolves once the conversation is on screen and the socket is starting;
  // tries again every 3 s while the server cannot be reached.
  async function start() {
    let position = 0;
    try {
      position = await load();
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        composer.setEnabled(false);
        onEnded();
        return;
      }
      showProblem("Could not load the conversation. Retrying…");
      await new Promise((resolve) => setTimeout(resolve, 3000));
      return start();
    }
    loaded = true;
    refreshEmpty();
    list.setAttribute("aria-busy", "false");
    thread.scrollToFirstUnread();
    if (autofocus && window.matchMedia("(hover: hover) and (pointer: fine)").matches) $("#composer-input").focus({ preventScroll: true });
    socket.position = position;
    socket.start();
    for (const item of messenger.pending()) if (!item.failed) messenger.transmit(item);
  }

  return {
    socket,
    thread,
    messenger,
    composer,
    start,
    // What is on screen may now count as read (the widget was opened).
    readVisible,
    get unread() {
      return unread || 0;
    },
  };
}
