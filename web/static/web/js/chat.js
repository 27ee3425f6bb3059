// The customer's chat page: one conversation with the support team.

import { api, syncMessages } from "./api.js";
import { AttachmentTray } from "./attachments.js";
import { Composer } from "./composer.js";
import { $, announce, formatAgo, formatFull, h, readConfig, uuid4 } from "./dom.js";
import { Messenger } from "./messenger.js";
import { Outbox } from "./outbox.js";
import { setupPushOffer } from "./push-offer.js";
import { SearchBox, snippet } from "./search.js";
import { ParleySocket } from "./socket.js";
import { Thread } from "./thread.js";
import { ConnectionStatus, TypingLine, editMessage, problemBanner } from "./status.js";

const config = readConfig();
const me = { kind: "customer", id: config.customerId, name: config.customerName };
const baseTitle = document.title;

const socket = new ParleySocket(config.socketPath);
const outbox = new Outbox(`parley.outbox.customer.${config.customerId}`);
const messenger = new Messenger({ socket, outbox, sendPath: () => "/api/v1/messages" });
const list = $("#messages");
const empty = $("#empty");
const unreadPill = $("#unread");
const showProblem = problemBanner($("#problem"));

const thread = new Thread({
  list,
  scroller: $("#thread"),
  jump: $("#jump"),
  me,
  names: { self: "You" },
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
new SearchBox({
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

// -- badge --------------------------------------------------------------------

let unread = 0;

function setBadge(count) {
  unread = Math.max(0, count | 0);
  document.title = unread ? `(${unread}) ${baseTitle}` : baseTitle;
  unreadPill.hidden = unread === 0;
  unreadPill.textContent = unread === 1 ? "1 unread" : `${unread} unread`;
  document.body.dataset.unread = String(unread);
  try {
    if (unread && navigator.setAppBadge) navigator.setAppBadge(unread);
    else if (!unread && navigator.clearAppBadge) navigator.clearAppBadge();
  } catch {
    /* app badges are a nicety */
  }
}

// -- reading ---------------------------------------------------------------------

function readIfVisible(ids) {
  if (document.visibilityState !== "visible") return;
  for (const id of ids) {
    const msg = thread.get(id);
    if (msg && msg.sender.kind === "agent" && !msg.read_at) messenger.read(id);
  }
}

document.addEventListener("visibilitychange", () => readIfVisible(thread.visibleUnread()));
socket.addEventListener("live", () => readIfVisible(thread.visibleUnread()));

// -- editing --------------------------------------------------------------------------


function refreshEmpty() {
  empty.hidden = thread.size > 0;
}

// -- live frames -----------------------------------------------------------------------

socket.addEventListener("frame", (event) => {
  const frame = event.detail;
  switch (frame.type) {
    case "message.sent":
    case "message.edited": {
      const isNew = thread.upsert(frame.message);
      refreshEmpty();
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
  if (message) thread.upsert(message);
  else thread.confirm(id);
});
messenger.addEventListener("failed", (event) => thread.fail(event.detail.message_id, event.detail.detail));
messenger.addEventListener("problem", (event) => {
  if (event.detail.code !== "unknown_position") showProblem(event.detail.detail);
});

socket.addEventListener("unauthorized", () => {
  $("#ended").hidden = false;
  composer.setEnabled(false);
});

// -- loading -------------------------------------------------------------------------------

async function load() {
  const { messages, position } = await syncMessages("/api/v1/messages");
  for (const msg of messages) {
    thread.upsert(msg);
    messenger.known(msg.message_id);
  }
  for (const item of messenger.pending()) {
    thread.addPending(item);
    if (item.failed) thread.fail(item.message_id, item.failed);
  }
  // The badge projection can trail the timeline: read it as of the same position.
  const badge = await api("GET", `/api/v1/badge?min_position=${position}`);
  setBadge(badge.unread);
  return position;
}

async function resync() {
  socket.stop();
  const position = await load();
  socket.position = position;
  socket.start();
}

async function start() {
  let position = 0;
  try {
    position = await load();
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      $("#ended").hidden = false;
      composer.setEnabled(false);
      return;
    }
    showProblem("Could not load the conversation. Retrying…");
    setTimeout(start, 3000);
    return;
  }
  refreshEmpty();
  list.setAttribute("aria-busy", "false");
  thread.scrollToFirstUnread();
  if (window.matchMedia("(hover: hover) and (pointer: fine)").matches) $("#composer-input").focus({ preventScroll: true });
  socket.position = position;
  socket.start();
  for (const item of messenger.pending()) if (!item.failed) messenger.transmit(item);
}

setupPushOffer({ button: $("#enable-push"), note: $("#push-note"), off: $("#disable-push"), modulePath: config.pushModule });
start();

// For people debugging a deployment, and for the browser tests.
window.parley = { socket, thread, messenger, composer };
