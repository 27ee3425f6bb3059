// The agent dashboard: every conversation, live; one open at a time with
// its timeline, the reply box and the customer's contact details.

import { api, syncMessages } from "./api.js";
import { AttachmentTray } from "./attachments.js";
import { Composer } from "./composer.js";
import { $, announce, formatAgo, formatFull, formatWhen, h, initials, readConfig, uuid4 } from "./dom.js";
import { Messenger } from "./messenger.js";
import { Outbox } from "./outbox.js";
import { SearchBox } from "./search.js";
import { ParleySocket } from "./socket.js";
import { ConnectionStatus, TypingLine, editMessage, problemBanner } from "./status.js";
import { Thread } from "./thread.js";
import { ComposerMode, NoteSender } from "./notes.js";
import { STATUS_LABELS, WorkflowBar, drawSla } from "./workflow.js";

const PAGE = 30;
const FINE_POINTER = window.matchMedia("(hover: hover) and (pointer: fine)").matches;
const config = readConfig();
const me = { kind: "agent", id: config.agentId, name: config.agentName };
const baseTitle = document.title;

const app = $("#app");
const listEl = $("#conversation-list");
const listEmpty = $("#list-empty");
const filterEmpty = $("#filter-empty");
const loadMore = $("#load-more");
const filterEl = $("#filter");
const statusFilterEl = $("#status-filter");
const scopeButtons = [...document.querySelectorAll(".scope")];
let scope = "all"; // "all" | "mine" | "none" (unassigned)
const totalUnread = $("#total-unread");
const showProblem = problemBanner($("#problem"));
const detailsEl = $("#details");
const detailsBody = $("#details-body");
const detailsToggle = $("#details-toggle");

$("#me-avatar").textContent = initials(me.name);

const socket = new ParleySocket(config.socketPath);
const outbox = new Outbox(`parley.outbox.agent.${config.agentId}`);
const messenger = new Messenger({
  socket,
  outbox,
  agent: true,
  sendPath: (item) => `/api/v1/conversations/${item.customer_id}/messages`,
});
new ConnectionStatus({ el: $("#connection"), banner: $("#offline"), retry: $("#reconnect"), socket });
new SearchBox({
  form: $("#search"),
  input: $("#search-input"),
  list: $("#search-results"),
  status: $("#search-status"),
  hide: $("#conversation-list-area"),
});

// -- state ------------------------------------------------------------------------

const conversations = new Map(); // customer_id -> conversation row from the API
const rows = new Map(); // customer_id -> <li>
const customerTyping = new Map(); // customer_id -> timer
const drafts = new Map(); // customer_id -> unsent reply text
const draftModes = new Map(); // customer_id -> "reply" | "note": what the kept draft is
let oldestLoaded = null;
let loaded = false; // the first page of conversations has arrived
let openId = null;
let openSeq = 0;
let profile = null;

const thread = new Thread({
  list: $("#messages"),
  scroller: $("#thread"),
  jump: $("#jump"),
  me,
  names: { self: "You" },
  onSeen: () => readOpenConversation(),
  onEdit: (msg) => {
    mode.set("reply");
    composer.startEdit(msg);
  },
  onRetry: (id) => {
    thread.retrying(id);
    if (notes.has(id)) notes.retry(id);
    else messenger.retry(id);
  },
  onDiscard: (id) => {
    if (notes.has(id)) notes.discard(id);
    else messenger.discard(id);
    thread.remove(id);
  },
});

const tray = new AttachmentTray({ tray: $("#attachment-tray"), input: $("#attach-input"), button: $("#attach"), dropTarget: $("#composer") });

const composer = new Composer({
  form: $("#composer"),
  attachments: tray,
  input: $("#composer-input"),
  button: $("#send"),
  counter: $("#counter"),
  editBanner: $("#edit-banner"),
  onSend: (body, attachments) => {
    if (!openId) return;
    if (mode.note) {
      thread.addPendingNote(notes.send(openId, body));
      drafts.delete(openId);
      return;
    }
    const item = { message_id: uuid4(), body, attachments, customer_id: openId, created_at: new Date().toISOString() };
    thread.addPending(item);
    messenger.send(item);
    drafts.delete(openId);
  },
  onEdit: (id, body) => editMessage(thread, id, body, showProblem),
  // Never while writing a note: the customer must not see "typing" for it.
  onTyping: () => openId && !mode.note && socket.send({ type: "typing", customer_id: openId }),
  onEditLast: () => (mode.note ? null : thread.lastEditable()),
  onEditing: (msg) => thread.setEditing(msg ? msg.message_id : null),
});
const typing = new TypingLine($("#typing"));
const mode = new ComposerMode({
  form: $("#composer"),
  input: $("#composer-input"),
  send: $("#send"),
  label: $("#composer-label"),
  replyButton: $("#mode-reply"),
  noteButton: $("#mode-note"),
  noteLabel: $("#note-label"),
  onChange: () => {
    if (composer.editing) composer.cancelEdit();
    // Notes are text only: files wait in the tray for the next reply.
    tray.setEnabled(!mode.note);
    composer.updateCounter();
  },
});
const notes = new NoteSender();
notes.addEventListener("saved", (event) => {
  const { note } = event.detail;
  if (note.customer_id === openId) thread.upsert(note);
});
notes.addEventListener("failed", (event) => thread.fail(event.detail.note_id, event.detail.detail));

const workflow = new WorkflowBar({
  me,
  open: () => (openId ? conversations.get(openId) || null : null),
  update: (conv) => upsertConversation(conv),
  refresh: async (id) => {
    try {
      const data = await api("GET", `/api/v1/conversations/${id}`);
      if (data.conversation) upsertConversation(data.conversation);
    } catch {
      /* the frames will tell */
    }
    return conversations.get(id) || null;
  },
  showProblem: (text) => showProblem(text),
});

// -- conversation list ------------------------------------------------------------------

function sortedIds() {
  return [...conversations.values()]
    .sort((a, b) => (a.last_activity_at < b.last_activity_at ? 1 : a.last_activity_at > b.last_activity_at ? -1 : a.customer_id < b.customer_id ? -1 : 1))
    .map((c) => c.customer_id);
}

// What each filter shows, for when it shows nothing.
const FILTER_EMPTY = {
  awaiting: "No conversations are waiting for a reply.",
  unread: "No unread conversations.",
};

function matchesFilter(conv) {
  const filter = filterEl.value;
  if (scope === "mine" && !(conv.assignee && conv.assignee.id === me.id)) return false;
  if (scope === "none" && conv.assignee) return false;
  if (statusFilterEl.value && (conv.status || "open") !== statusFilterEl.value) return false;
  if (filter === "awaiting") return conv.awaiting_reply;
  if (filter === "unread") return conv.unread_for_agents > 0;
  return true;
}

function filtering() {
  return filterEl.value !== "all" || scope !== "all" || statusFilterEl.value !== "";
}

// What the chosen tab and filters show, for when they show nothing.
function emptyText() {
  const status = statusFilterEl.value;
  const filter = filterEl.value;
  if (scope === "all" && !status && FILTER_EMPTY[filter]) return FILTER_EMPTY[filter];
  const adjectives = [status, filter === "unread" ? "unread" : "", scope === "none" ? "unassigned" : ""].filter(Boolean);
  const tail = [scope === "mine" ? "assigned to you" : "", filter === "awaiting" ? "waiting for a reply" : ""].filter(Boolean);
  return `No ${adjectives.length ? `${adjectives.join(" ")} ` : ""}conversations${tail.length ? ` ${tail.join(" and ")}` : ""}.`;
}

// The list endpoint's filters for the chosen tab and status.
function listQuery() {
  let query = "";
  if (scope !== "all") query += `&assignee=${scope === "mine" ? "me" : scope}`;
  if (statusFilterEl.value) query += `&status=${encodeURIComponent(statusFilterEl.value)}`;
  return query;
}

function previewText(conv) {
  const last = conv.last_message || {};
  if (customerTyping.has(conv.customer_id)) return "typing…";
  const who = last.sender && last.sender.kind === "agent" ? (last.sender.id === me.id ? "You: " : `${last.sender.name || "Agent"}: `) : "";
  return `${who}${last.preview || ""}`;
}

function renderRow(conv) {
  const id = conv.customer_id;
  const unread = conv.unread_for_agents || 0;
  const name = conv.customer_name || "Unnamed customer";
  const at = new Date(conv.last_activity_at);
  const link = h(
    "a",
    {
      class: `conv${unread ? " conv--unread" : ""}${conv.awaiting_reply ? " conv--awaiting" : ""}`,
      href: `#${id}`,
      "aria-current": id === openId ? "page" : null,
      dataset: { customerId: id },
    },
    h("span", { class: "avatar", "aria-hidden": "true" }, initials(name)),
    h(
      "span",
      { class: "conv__main" },
      h(
        "span",
        { class: "conv__top" },
        h("span", { class: "conv__name" }, name),
        conv.awaiting_reply
          ? h("span", { class: "tag tag--awaiting", title: "The customer is waiting for a reply" }, "Waiting", h("span", { class: "visually-hidden" }, " for a reply"))
          : null,
        h("time", { class: "conv__time", datetime: conv.last_activity_at, title: formatFull(at), dataset: { ago: conv.last_activity_at } }, formatAgo(at)),
      ),
      h(
        "span",
        { class: "conv__bottom" },
        h("span", { class: `conv__preview${customerTyping.has(id) ? " conv__preview--typing" : ""}` }, previewText(conv)),
        unread ? h("span", { class: "count", "aria-hidden": "true" }, String(unread)) : null,
        unread ? h("span", { class: "visually-hidden" }, `, ${unread} unread`) : null,
      ),
      workflowLine(conv),
    ),
  );
  let li = rows.get(id);
  if (!li) {
    li = h("li", { class: "conversations__item" });
    rows.set(id, li);
  }
  li.replaceChildren(link);
  li.hidden = !matchesFilter(conv);
  return li;
}

// Who holds it, its status unless open, and the first-response clock.
function workflowLine(conv) {
  const status = conv.status || "open";
  const sla = h("span", { class: "tag tag--sla", dataset: { slaFor: conv.customer_id } });
  drawSla(sla, conv);
  const mine = conv.assignee && conv.assignee.id === me.id;
  return h(
    "span",
    { class: "conv__workflow" },
    h("span", { class: `conv__assignee${conv.assignee ? "" : " conv__assignee--none"}${mine ? " conv__assignee--me" : ""}` }, conv.assignee ? (mine ? "You" : conv.assignee.name) : "Unassigned"),
    status !== "open" ? h("span", { class: `tag tag--status`, dataset: { status } }, STATUS_LABELS[status] || status) : null,
    sla,
  );
}

function renderList() {
  const ids = sortedIds();
  const focused = document.activeElement && listEl.contains(document.activeElement) ? document.activeElement.dataset.customerId : null;
  const items = ids.map((id) => rows.get(id) || renderRow(conversations.get(id)));
  // Re-append only when the order changed, so focus and screen readers are not disturbed needlessly.
  const current = [...listEl.children];
  if (current.length !== items.length || current.some((el, i) => el !== items[i])) {
    listEl.replaceChildren(...items);
    if (focused) {
      const again = listEl.querySelector(`[data-customer-id="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }
  const filtered = filtering();
  const shown = items.filter((li) => !li.hidden).length;
  listEmpty.hidden = !loaded || filtered || conversations.size > 0;
  filterEmpty.hidden = !loaded || !filtered || shown > 0;
  if (!filterEmpty.hidden) {
    const more = loadMore.hidden ? "" : " Older conversations are not loaded yet.";
    $("#filter-empty-text").textContent = `${emptyText()}${more}`;
  }
  // With no conversation at all there is nothing to choose: say how customers get here.
  $("#placeholder-none").hidden = !loaded || conversations.size > 0;
  $("#placeholder-choose").hidden = !loaded || conversations.size === 0;
  updateUnreadTotal();
}

function showAll() {
  filterEl.value = "all";
  statusFilterEl.value = "";
  setScope("all");
  filterEl.focus();
}

function drawScopes() {
  for (const b of scopeButtons) b.setAttribute("aria-pressed", String(b.dataset.scope === scope));
}

// A tab or the status changed: the first page of what it shows comes from
// the list endpoint's filters; rows already here are shown if they match.
let listSeq = 0;
async function reloadFiltered() {
  drawScopes();
  const seq = ++listSeq;
  for (const conv of conversations.values()) renderRow(conv);
  renderList();
  oldestLoaded = null;
  try {
    await loadConversations();
  } catch (err) {
    if (seq === listSeq) showProblem(`Could not load conversations: ${err.message}`);
  }
}

function setScope(value) {
  scope = value;
  reloadFiltered();
}
for (const b of scopeButtons) b.addEventListener("click", () => setScope(b.dataset.scope));
statusFilterEl.addEventListener("change", reloadFiltered);
$("#show-all").addEventListener("click", showAll);
$("#chat-address").textContent = `${location.origin}/chat/`;

function upsertConversation(conv) {
  const known = conversations.get(conv.customer_id);
  // An older copy (a write's answer after a newer frame) changes nothing.
  if (known && Number.isInteger(known.position) && Number.isInteger(conv.position) && known.position > conv.position) return;
  conversations.set(conv.customer_id, conv);
  renderRow(conv);
  renderList();
  if (conv.customer_id === openId) renderHeader();
}

function updateUnreadTotal() {
  let total = 0;
  for (const conv of conversations.values()) total += conv.unread_for_agents || 0;
  document.title = total ? `(${total}) ${baseTitle}` : baseTitle;
  totalUnread.hidden = total === 0;
  totalUnread.textContent = `${total} unread`;
}

async function loadConversations() {
  const query = oldestLoaded ? `&before=${encodeURIComponent(oldestLoaded)}` : "";
  const data = await api("GET", `/api/v1/conversations?limit=${PAGE}${query}${listQuery()}`);
  for (const conv of data.conversations) {
    // Live updates may already hold a newer copy of this row.
    if (!conversations.has(conv.customer_id)) {
      conversations.set(conv.customer_id, conv);
      renderRow(conv);
    }
  }
  const last = data.conversations[data.conversations.length - 1];
  if (last) oldestLoaded = last.last_activity_at;
  loadMore.hidden = data.conversations.length < PAGE;
  loaded = true;
  renderList();
  return data.position;
}

loadMore.addEventListener("click", async () => {
  loadMore.disabled = true;
  try {
    await loadConversations();
  } catch (err) {
    showProblem(`Could not load more conversations: ${err.message}`);
  } finally {
    loadMore.disabled = false;
  }
});

// Up and Down move between conversations (Tab still works; Enter opens).
listEl.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const links = [...listEl.querySelectorAll(".conversations__item:not([hidden]) .conv")];
  const at = links.indexOf(document.activeElement);
  if (at < 0) return;
  const next = links[at + (event.key === "ArrowDown" ? 1 : -1)];
  if (next) {
    event.preventDefault();
    next.focus();
  }
});

filterEl.addEventListener("change", () => {
  for (const conv of conversations.values()) renderRow(conv);
  renderList();
});

setInterval(() => {
  for (const el of listEl.querySelectorAll("time[data-ago]")) el.textContent = formatAgo(new Date(el.dataset.ago));
}, 30000);

// The first-response clocks count down every second.
setInterval(() => {
  for (const el of listEl.querySelectorAll("[data-sla-for]")) drawSla(el, conversations.get(el.dataset.slaFor));
  workflow.tick();
}, 1000);

// -- the open conversation ------------------------------------------------------------------

function renderHeader() {
  const conv = conversations.get(openId);
  const name = (profile && profile.name) || (conv && conv.customer_name) || "Customer";
  $("#conversation-title").textContent = name;
  mode.setName(name);
  workflow.render();
  const sub = $("#conversation-sub");
  if (conv && conv.awaiting_reply) sub.textContent = `Waiting for a reply · last message ${formatWhen(new Date(conv.last_message.sent_at))}`;
  else if (conv) sub.textContent = `Last activity ${formatWhen(new Date(conv.last_activity_at))}`;
  else sub.textContent = "";
}

function renderDetails() {
  if (!profile) {
    detailsBody.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    return;
  }
  const rowsOut = [];
  const add = (label, value) => rowsOut.push(h("dt", {}, label), h("dd", {}, value));
  add("Name", profile.name || "—");
  add("Email", profile.email ? h("a", { href: `mailto:${profile.email}` }, profile.email) : "—");
  add("Phone", profile.phone ? h("a", { href: `tel:${profile.phone.replace(/[^0-9+]/g, "")}` }, profile.phone) : "—");
  if (profile.external_id) add("External id", h("code", {}, profile.external_id));
  add("Customer id", h("code", { class: "small" }, profile.customer_id));
  detailsBody.replaceChildren(
    h("div", { class: "details__card" }, h("span", { class: "avatar avatar--lg", "aria-hidden": "true" }, initials(profile.name)), h("p", { class: "details__name" }, profile.name)),
    h("dl", { class: "details__list" }, rowsOut),
    h("p", { class: "muted small" }, detailsOrigin(profile)),
  );
}

// Where the contact details came from, by how the customer came to Parley.
function detailsOrigin(customer) {
  switch (customer.origin) {
    case "form":
      return "The customer gave these details in the chat's “start a conversation” form. They are read-only here.";
    case "api":
      return "Contact details come from your customer records (your application keeps them up to date through the API) and are read-only here.";
    case "webhook":
      return "This customer wrote in through a connected messaging channel; the details came with their messages. They are read-only here.";
    default:
      return "Contact details are read-only here.";
  }
}

let profileTimer = null;
function refreshProfileSoon() {
  clearTimeout(profileTimer);
  const id = openId;
  profileTimer = setTimeout(async () => {
    if (id !== openId) return;
    try {
      const data = await api("GET", `/api/v1/conversations/${id}`);
      if (id !== openId) return;
      profile = data.customer;
      renderDetails();
      renderHeader();
    } catch {
      /* the next update tries again */
    }
  }, 500);
}

async function openConversation(id) {
  if (openId && openId !== id) {
    drafts.set(openId, composer.draft);
    draftModes.set(openId, mode.mode);
  }
  const seq = ++openSeq;
  const previous = openId;
  openId = id;
  profile = null;
  for (const conv of [previous, id]) if (conv && conversations.has(conv)) renderRow(conversations.get(conv));
  $("#placeholder").hidden = true;
  $("#open").hidden = false;
  app.dataset.view = "thread";
  detailsEl.hidden = false;
  typing.clear();
  thread.clear();
  composer.draft = drafts.get(id) || "";
  // A kept draft goes back to the box it was written in (a note stays a note).
  mode.set(draftModes.get(id) || "reply");
  renderHeader();
  renderDetails();
  try {
    const [detail, page] = await Promise.all([
      api("GET", `/api/v1/conversations/${id}`),
      // At least as current as the socket: live frames after its position
      // come over the socket, everything up to it must be in this read.
      syncMessages(`/api/v1/conversations/${id}/messages?min_position=${socket.position || 0}`),
    ]);
    if (seq !== openSeq) return;
    profile = detail.customer;
    if (detail.conversation && !conversations.has(id)) upsertConversation(detail.conversation);
    for (const msg of page.messages) {
      thread.upsert(msg);
      if (msg.kind !== "note") messenger.known(msg.message_id);
    }
    for (const note of notes.pendingFor(id)) thread.addPendingNote(note);
    for (const item of messenger.pending()) {
      if (item.customer_id !== id) continue;
      thread.addPending(item);
      if (item.failed) thread.fail(item.message_id, item.failed);
    }
    renderDetails();
    renderHeader();
    thread.scrollToFirstUnread();
    readOpenConversation();
  } catch (err) {
    if (seq !== openSeq) return;
    showProblem(err.status === 404 ? "That conversation does not exist." : `Could not open the conversation: ${err.message}`);
  }
}

function closeConversation() {
  if (openId) {
    drafts.set(openId, composer.draft);
    draftModes.set(openId, mode.mode);
  }
  const previous = openId;
  openId = null;
  openSeq++;
  if (previous && conversations.has(previous)) renderRow(conversations.get(previous));
  thread.clear();
  typing.clear();
  $("#open").hidden = true;
  $("#placeholder").hidden = false;
  detailsEl.hidden = true;
  app.dataset.view = "list";
}

function route() {
  const id = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (/^[0-9a-f-]{36}$/i.test(id)) {
    // Straight to the reply box, except on touch screens where that would pop up the keyboard.
    if (id !== openId) openConversation(id).then(() => FINE_POINTER && $("#composer-input").focus({ preventScroll: true }));
  } else if (openId) {
    closeConversation();
  }
}

window.addEventListener("hashchange", route);
$("#back").addEventListener("click", () => {
  const id = openId;
  history.pushState(null, "", location.pathname);
  closeConversation();
  const row = id && listEl.querySelector(`[data-customer-id="${CSS.escape(id)}"]`);
  if (row) row.focus();
});

detailsToggle.addEventListener("click", () => {
  const open = app.dataset.details !== "open";
  app.dataset.details = open ? "open" : "";
  detailsToggle.setAttribute("aria-expanded", String(open));
  if (open) $("#details-close").focus();
});
$("#details-close").addEventListener("click", () => {
  app.dataset.details = "";
  detailsToggle.setAttribute("aria-expanded", "false");
  detailsToggle.focus();
});

// The agent has the conversation open and the page in front of them: what
// the customer wrote is read.
function readOpenConversation() {
  if (!openId || document.visibilityState !== "visible") return;
  for (const msg of thread.unreadFromThem()) messenger.read(msg.message_id);
}
document.addEventListener("visibilitychange", readOpenConversation);
socket.addEventListener("live", readOpenConversation);


// -- presence ----------------------------------------------------------------------------------

const presence = new Map([[me.id, me.name]]);

function renderPresence() {
  const items = [...presence.entries()]
    .sort(([a], [b]) => (a === me.id ? -1 : b === me.id ? 1 : 0))
    .map(([id, name]) =>
      h(
        "li",
        { class: "presence__item", title: id === me.id ? `${name} (you)` : name, dataset: { agentId: id } },
        h("span", { class: "avatar avatar--sm", "aria-hidden": "true" }, initials(name)),
        h("span", { class: "presence__name" }, id === me.id ? "You" : name),
      ),
    );
  $("#presence").replaceChildren(...items);
}
renderPresence();

// -- live frames ---------------------------------------------------------------------------------

function setCustomerTyping(customerId) {
  clearTimeout(customerTyping.get(customerId));
  customerTyping.set(
    customerId,
    setTimeout(() => {
      customerTyping.delete(customerId);
      if (conversations.has(customerId)) renderRow(conversations.get(customerId));
    }, 5000),
  );
  if (conversations.has(customerId)) renderRow(conversations.get(customerId));
}

function stopCustomerTyping(customerId) {
  if (!customerTyping.has(customerId)) return;
  clearTimeout(customerTyping.get(customerId));
  customerTyping.delete(customerId);
  if (conversations.has(customerId)) renderRow(conversations.get(customerId));
}

socket.addEventListener("frame", (event) => {
  const frame = event.detail;
  switch (frame.type) {
    case "conversation.updated": {
      const before = conversations.get(frame.conversation.customer_id);
      upsertConversation(frame.conversation);
      if (frame.conversation.customer_id === openId && (!before || before.customer_name !== frame.conversation.customer_name || !profile)) {
        refreshProfileSoon();
      }
      break;
    }
    case "message.sent":
    case "message.edited": {
      const msg = frame.message;
      if (msg.sender.kind === "customer") {
        stopCustomerTyping(msg.customer_id);
        if (msg.customer_id === openId) typing.stop(`customer:${msg.customer_id}`);
      } else if (msg.customer_id === openId) {
        typing.stop(`agent:${msg.sender.id}`);
      }
      if (msg.customer_id === openId) {
        const isNew = thread.upsert(msg);
        if (isNew && msg.sender.kind === "customer") {
          readOpenConversation();
          if (document.visibilityState !== "visible") announce(`New message from ${msg.sender.name || "the customer"}`);
        }
      }
      break;
    }
    case "note.created":
      if (frame.note.customer_id === openId) thread.upsert(frame.note);
      break;
    case "message.read":
      if (openId) thread.markRead(frame.message_id, frame.read_at, frame.position);
      break;
    case "typing": {
      const sender = frame.sender || {};
      if (sender.kind === "customer") {
        setCustomerTyping(frame.customer_id);
        if (frame.customer_id === openId) typing.start(`customer:${frame.customer_id}`, `${sender.name || (profile && profile.name) || "The customer"} is typing…`);
      } else if (sender.kind === "agent" && sender.id !== me.id && frame.customer_id === openId) {
        typing.start(`agent:${sender.id}`, `${sender.name || "Another agent"} is writing a reply…`);
      }
      break;
    }
    case "presence":
      if (frame.agent && frame.agent.id !== me.id) {
        if (frame.status === "online") {
          presence.set(frame.agent.id, frame.agent.name);
          if (!workflow.agents.some((a) => a.id === frame.agent.id)) workflow.loadAgents();
        }
        else presence.delete(frame.agent.id);
        renderPresence();
      }
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
  if (message && message.customer_id === openId) thread.upsert(message);
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
socket.addEventListener("state", (event) => {
  // Another agent's "offline" may have been missed while we were away: ask again.
  if (event.detail === "connecting") {
    for (const id of [...presence.keys()]) if (id !== me.id) presence.delete(id);
    renderPresence();
  }
});

// -- start ------------------------------------------------------------------------------------------

async function resync() {
  socket.stop();
  conversations.clear();
  rows.clear();
  oldestLoaded = null;
  const position = await loadConversations();
  if (openId) {
    const id = openId;
    openId = null;
    await openConversation(id);
  }
  socket.position = position;
  socket.start();
}

async function start() {
  let position;
  try {
    position = await loadConversations();
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      $("#ended").hidden = false;
      return;
    }
    showProblem("Could not load conversations. Retrying…");
    setTimeout(start, 3000);
    return;
  }
  socket.position = position;
  socket.start();
  workflow.loadAgents();
  route();
  for (const item of messenger.pending()) if (!item.failed) messenger.transmit(item);
}

start();

window.parley = { socket, thread, messenger, composer, conversations, notes, workflow };
