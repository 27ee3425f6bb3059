// The agent dashboard: every conversation, live; one open at a time with
// its timeline, the reply box and the customer's contact details.

import { api, syncMessages } from "./api.js";
import { AttachmentTray } from "./attachments.js";
import { CannedMenu, SavedReplies } from "./canned.js";
import { Composer } from "./composer.js";
import { $, announce, formatAgo, formatFull, formatWhen, h, initials, readConfig, uuid4 } from "./dom.js";
import { previewNodes } from "./icons.js";
import { setupMenus } from "./menus.js";
import { Messenger } from "./messenger.js";
import { Outbox } from "./outbox.js";
import { SearchBox } from "./search.js";
import { ParleySocket } from "./socket.js";
import { ConnectionStatus, TypingLine, editMessage, problemBanner } from "./status.js";
import { Thread } from "./thread.js";
import { ComposerMode, NoteSender } from "./notes.js";
import { STATUS_LABELS, WorkflowBar, drawSla, ratingTag } from "./workflow.js";

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
const labelFilterEl = $("#label-filter");
const scopeButtons = [...document.querySelectorAll(".scope")];
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

const conversations = new Map(); // customer_id -> conversation row from the API (every one seen)
const listed = new Set(); // the customer_ids the list shows: the server's answer for the filters, kept live
const rows = new Map(); // customer_id -> <li>
const customerTyping = new Map(); // customer_id -> timer
const drafts = new Map(); // customer_id -> unsent reply text
const draftModes = new Map(); // customer_id -> "reply" | "note": what the kept draft is
let loaded = false; // the first page of the list's filters has arrived
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
  // "/" opens the saved replies; while they show, the arrows, Enter, Tab and Escape are theirs.
  intercept: (event) => canned.keydown(event),
});
const savedReplies = new SavedReplies();
const canned = new CannedMenu({
  input: $("#composer-input"),
  list: $("#canned-list"),
  status: $("#canned-status"),
  replies: savedReplies,
  context: () => {
    const conv = openId ? conversations.get(openId) : null;
    return { customer: (profile && profile.name) || (conv && conv.customer_name) || "", agent: me.name };
  },
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
//
// The list shows what the server answers for the chosen tab and filters
// (GET /api/v1/conversations?assignee=&status=&label=&awaiting_reply=&unread=),
// page after page: the page never hides a row it was given, so every
// filter holds however far down the list its conversations are. Live
// updates keep it so: a conversation that stops matching leaves, one that
// starts matching comes in at its place (if that place is among the pages
// already loaded; further down, "Load older conversations" brings it).
// The tab and filters live in the address (?tab=mine&status=open&...), so a
// reload or a shared link shows the same list.

const TABS = new Set(["all", "mine", "none"]);
const STATUSES = new Set(["", "open", "pending", "snoozed", "resolved"]);
const SHOWS = new Set(["all", "awaiting", "unread"]);

function readFilters() {
  const q = new URLSearchParams(location.search);
  const pick = (name, allowed, fallback) => (allowed.has(q.get(name) || fallback) ? q.get(name) || fallback : fallback);
  return {
    tab: pick("tab", TABS, "all"),
    status: pick("status", STATUSES, ""),
    show: pick("show", SHOWS, "all"),
    label: (q.get("label") || "").trim().toLowerCase().slice(0, 32),
  };
}

let filters = readFilters();

function filtersQuery() {
  const q = new URLSearchParams();
  if (filters.tab !== "all") q.set("tab", filters.tab);
  if (filters.status) q.set("status", filters.status);
  if (filters.show !== "all") q.set("show", filters.show);
  if (filters.label) q.set("label", filters.label);
  const text = q.toString();
  return text ? `?${text}` : "";
}

function rememberFilters() {
  history.replaceState(history.state, "", `${location.pathname}${filtersQuery()}${location.hash}`);
}

// The same question, as the list endpoint's filters.
function listQuery() {
  let query = "";
  if (filters.tab !== "all") query += `&assignee=${filters.tab === "mine" ? "me" : "none"}`;
  if (filters.status) query += `&status=${encodeURIComponent(filters.status)}`;
  if (filters.label) query += `&label=${encodeURIComponent(filters.label)}`;
  if (filters.show === "awaiting") query += "&awaiting_reply=true";
  if (filters.show === "unread") query += "&unread=true";
  return query;
}

const marked = new Map(); // customer_id -> position of what we know of this agent's own unread mark
const markedNow = new Set(); // the conversations this agent marked unread

function isUnreadForMe(conv) {
  return (conv.unread_for_agents || 0) > 0 || markedNow.has(conv.customer_id);
}

// Whether a row belongs in the list under the chosen filters: the server's
// rule, applied to a row a live update brought (never to hide a row the
// server sent for these filters).
function matches(conv) {
  if (filters.tab === "mine" && !(conv.assignee && conv.assignee.id === me.id)) return false;
  if (filters.tab === "none" && conv.assignee) return false;
  if (filters.status && (conv.status || "open") !== filters.status) return false;
  if (filters.label && !(conv.labels || []).includes(filters.label)) return false;
  if (filters.show === "awaiting") return Boolean(conv.awaiting_reply);
  if (filters.show === "unread") return isUnreadForMe(conv);
  return true;
}

function newerFirst(a, b) {
  if (a.last_activity_at !== b.last_activity_at) return a.last_activity_at < b.last_activity_at ? 1 : -1;
  return a.customer_id < b.customer_id ? -1 : a.customer_id > b.customer_id ? 1 : 0;
}

function sortedIds() {
  return [...listed].map((id) => conversations.get(id)).sort(newerFirst).map((c) => c.customer_id);
}

// Whether a row sorts among the pages loaded so far (the next page starts after `cursor`).
function withinLoaded(conv) {
  return !hasMore || !cursor || newerFirst(conv, cursor) <= 0;
}

function filtering() {
  return filters.show !== "all" || filters.tab !== "all" || filters.status !== "" || filters.label !== "";
}

// What each filter shows, for when it shows nothing.
const FILTER_EMPTY = {
  awaiting: "No conversations are waiting for a reply.",
  unread: "No unread conversations.",
};

// What the chosen tab and filters show, for when they show nothing.
function emptyText() {
  const { status, show, tab, label } = filters;
  if (tab === "all" && !status && !label && FILTER_EMPTY[show]) return FILTER_EMPTY[show];
  const adjectives = [status, show === "unread" ? "unread" : "", tab === "none" ? "unassigned" : ""].filter(Boolean);
  const tail = [tab === "mine" ? "assigned to you" : "", show === "awaiting" ? "waiting for a reply" : "",
    label ? `labelled “${label}”` : ""].filter(Boolean);
  return `No ${adjectives.length ? `${adjectives.join(" ")} ` : ""}conversations${tail.length ? ` ${tail.join(" and ")}` : ""}.`;
}

function previewNodesOf(conv) {
  const last = conv.last_message || {};
  if (customerTyping.has(conv.customer_id)) return ["typing…"];
  const who = last.sender && last.sender.kind === "agent" ? (last.sender.id === me.id ? "You: " : `${last.sender.name || "Agent"}: `) : "";
  return [who, ...previewNodes(last.preview || "")];
}

function renderRow(conv) {
  const id = conv.customer_id;
  const unread = conv.unread_for_agents || 0;
  const mark = markedNow.has(id);
  const name = conv.customer_name || "Unnamed customer";
  const at = new Date(conv.last_activity_at);
  const link = h(
    "a",
    {
      class: `conv${unread || mark ? " conv--unread" : ""}${mark ? " conv--marked" : ""}${conv.awaiting_reply ? " conv--awaiting" : ""}`,
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
        h("span", { class: `conv__preview${customerTyping.has(id) ? " conv__preview--typing" : ""}` }, previewNodesOf(conv)),
        unread ? h("span", { class: "count", "aria-hidden": "true" }, String(unread)) : null,
        unread ? h("span", { class: "visually-hidden" }, `, ${unread} unread`) : null,
        !unread && mark ? h("span", { class: "dot", title: "You marked it unread" }) : null,
        !unread && mark ? h("span", { class: "visually-hidden" }, ", marked unread") : null,
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
  return li;
}

// Who holds it, its status unless open, the first-response clock and its labels.
function workflowLine(conv) {
  const status = conv.status || "open";
  const sla = h("span", { class: "tag tag--sla", dataset: { slaFor: conv.customer_id } });
  drawSla(sla, conv);
  const mine = conv.assignee && conv.assignee.id === me.id;
  const labels = conv.labels || [];
  return h(
    "span",
    { class: "conv__workflow" },
    h("span", { class: `conv__assignee${conv.assignee ? "" : " conv__assignee--none"}${mine ? " conv__assignee--me" : ""}` }, conv.assignee ? (mine ? "You" : conv.assignee.name) : "Unassigned"),
    status !== "open" ? h("span", { class: `tag tag--status`, dataset: { status } }, STATUS_LABELS[status] || status) : null,
    sla,
    ratingTag(conv),
    labels.length ? h("span", { class: "conv__labels" }, labels.map((l) => h("span", { class: "label label--small" }, l))) : null,
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
  listEmpty.hidden = !loaded || filtered || items.length > 0;
  filterEmpty.hidden = !loaded || !filtered || items.length > 0;
  if (!filterEmpty.hidden) $("#filter-empty-text").textContent = emptyText();
  loadMore.hidden = !hasMore;
  // With no conversation at all there is nothing to choose: say how customers get here.
  const none = loaded && !filtered && items.length === 0;
  $("#placeholder-none").hidden = !none;
  $("#placeholder-choose").hidden = !loaded || none;
  updateUnreadTotal();
}

function drawFilters() {
  for (const b of scopeButtons) b.setAttribute("aria-pressed", String(b.dataset.scope === filters.tab));
  statusFilterEl.value = filters.status;
  filterEl.value = filters.show;
  ensureLabelOption(filters.label);
  labelFilterEl.value = filters.label;
}

// A tab or filter changed: the list is what the server answers for it, from
// its first page; the address remembers the choice.
let listSeq = 0;
async function reloadFiltered() {
  rememberFilters();
  drawFilters();
  listSeq++;
  listed.clear();
  arrivedWhileLoading.clear();
  cursor = null;
  hasMore = false;
  loaded = false;
  renderList();
  try {
    await loadConversations();
  } catch (err) {
    showProblem(`Could not load conversations: ${err.message}`);
  }
}

function setFilters(change) {
  filters = { ...filters, ...change };
  reloadFiltered();
}

function showAll() {
  setFilters({ tab: "all", status: "", show: "all", label: "" });
  filterEl.focus();
}

for (const b of scopeButtons) b.addEventListener("click", () => setFilters({ tab: b.dataset.scope }));
statusFilterEl.addEventListener("change", () => setFilters({ status: statusFilterEl.value }));
filterEl.addEventListener("change", () => setFilters({ show: filterEl.value }));
labelFilterEl.addEventListener("change", () => setFilters({ label: labelFilterEl.value }));
$("#show-all").addEventListener("click", showAll);
$("#chat-address").textContent = `${location.origin}/chat/`;

// A newer copy of a conversation (a frame, a write's answer, a page): the
// row is redrawn, and joins or leaves the list by the filters.
// ``fromPage``: the server listed it for these filters; ``markAt``: the
// position its ``marked_unread`` is current to (a page's, a write's).
function upsertConversation(conv, { fromPage = false, markAt = null } = {}) {
  const id = conv.customer_id;
  if ("marked_unread" in conv) learnMark(id, conv.marked_unread, markAt ?? conv.position);
  const known = conversations.get(id);
  // An older copy (a write's answer after a newer frame) changes nothing but the list it is in.
  const stale = known && Number.isInteger(known.position) && Number.isInteger(conv.position) && known.position > conv.position;
  const row = stale ? known : conv;
  if (known && String(known.labels) !== String(row.labels)) labelsChanged();
  conversations.set(id, row);
  if (fromPage && !stale) listed.add(id);
  else if (!matches(row)) listed.delete(id);
  else if (listed.has(id) || (loaded && withinLoaded(row))) listed.add(id);
  else if (!loaded) arrivedWhileLoading.add(id); // the page on its way may have been read before this
  renderRow(row);
  renderList();
  if (id === openId) renderHeader();
}

// This agent's own unread mark: from a page (as of its read) or a frame (as of its event).
function learnMark(id, on, position) {
  const at = marked.get(id);
  if (at !== undefined && Number.isInteger(position) && position < at) return;
  marked.set(id, Number.isInteger(position) ? position : at || 0);
  if (on) markedNow.add(id);
  else markedNow.delete(id);
}

function updateUnreadTotal() {
  let total = 0;
  for (const conv of conversations.values()) total += conv.unread_for_agents || (markedNow.has(conv.customer_id) ? 1 : 0);
  document.title = total ? `(${total}) ${baseTitle}` : baseTitle;
  totalUnread.hidden = total === 0;
  totalUnread.textContent = `${total} unread`;
}

let cursor = null; // the last conversation loaded: the next page starts after it
const arrivedWhileLoading = new Set(); // ids of live rows that came while the filters' first page was loading
let hasMore = false;

async function loadConversations() {
  const seq = listSeq;
  const after = cursor ? `&before=${encodeURIComponent(cursor.last_activity_at)}&before_id=${cursor.customer_id}` : "";
  const data = await api("GET", `/api/v1/conversations?limit=${PAGE}${after}${listQuery()}`);
  if (seq !== listSeq) return data.position; // the filters changed meanwhile: a newer load fills the list
  for (const conv of data.conversations) upsertConversation(conv, { fromPage: true, markAt: data.position });
  const last = data.conversations[data.conversations.length - 1];
  if (last) cursor = { last_activity_at: last.last_activity_at, customer_id: last.customer_id };
  hasMore = data.conversations.length === PAGE;
  loaded = true;
  // Rows a live update brought while the page was on its way: in, where they now belong.
  for (const id of arrivedWhileLoading) {
    const row = conversations.get(id);
    if (row && matches(row) && withinLoaded(row)) listed.add(id);
  }
  arrivedWhileLoading.clear();
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
  const links = [...listEl.querySelectorAll(".conv")];
  const at = links.indexOf(document.activeElement);
  if (at < 0) return;
  const next = links[at + (event.key === "ArrowDown" ? 1 : -1)];
  if (next) {
    event.preventDefault();
    next.focus();
  }
});

// -- labels in use (the filter's choices) ---------------------------------------------------

let labelsTimer = null;
function labelsChanged() {
  clearTimeout(labelsTimer);
  labelsTimer = setTimeout(loadLabels, 500);
}

function ensureLabelOption(label) {
  if (label && ![...labelFilterEl.options].some((o) => o.value === label)) labelFilterEl.append(h("option", { value: label }, label));
}

async function loadLabels() {
  try {
    const data = await api("GET", "/api/v1/labels");
    labelFilterEl.replaceChildren(h("option", { value: "" }, "Any label"), ...data.labels.map((l) => h("option", { value: l.label }, l.label)));
    ensureLabelOption(filters.label);
    labelFilterEl.value = filters.label;
    labelFilterEl.hidden = data.labels.length === 0 && !filters.label;
    workflow.setKnownLabels(data.labels);
  } catch {
    /* the filter keeps its choices */
  }
}

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
    if (detail.conversation) upsertConversation(detail.conversation, { markAt: page.position });
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
    // Opened again: a mark of "unread" this agent left on it has done its job.
    if (markedNow.has(id)) clearMark(id);
  } catch (err) {
    if (seq !== openSeq) return;
    showProblem(err.status === 404 ? "That conversation does not exist." : `Could not open the conversation: ${err.message}`);
  }
}

async function clearMark(id) {
  try {
    const data = await api("DELETE", `/api/v1/conversations/${id}/unread`);
    upsertConversation(data.conversation, { markAt: data.position });
  } catch {
    /* it stays marked; opening it again tries again */
  }
}

// "Mark unread": the conversation stays bold in this agent's list (and in
// their Unread filter) until they open it again; back to the list meanwhile,
// or opening it would clear the mark at once.
$("#mark-unread").addEventListener("click", async () => {
  const id = openId;
  if (!id) return;
  try {
    const data = await api("POST", `/api/v1/conversations/${id}/unread`);
    upsertConversation(data.conversation, { markAt: data.position });
  } catch (err) {
    showProblem(`Could not mark it unread: ${err.message}`);
    return;
  }
  history.pushState(null, "", `${location.pathname}${location.search}`);
  closeConversation();
  announce("Marked unread");
  const row = listEl.querySelector(`[data-customer-id="${CSS.escape(id)}"]`);
  if (row) row.focus();
});

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
  history.pushState(null, "", `${location.pathname}${location.search}`);
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
    case "customer.erased": {
      // Everything about this customer is gone: their row, their thread, a draft to them.
      const id = frame.customer_id;
      if (id === openId) closeConversation();
      conversations.delete(id);
      listed.delete(id);
      rows.delete(id);
      drafts.delete(id);
      draftModes.delete(id);
      renderList();
      break;
    }
    case "conversation.unread":
      // Every agent's mark is heard; only one's own counts.
      if (frame.agent_id === me.id) {
        learnMark(frame.customer_id, frame.unread, frame.position);
        const conv = conversations.get(frame.customer_id);
        if (conv) {
          // Redrawn, and in or out of the Unread filter; its own (older) mark is not learnt again.
          const { marked_unread: _older, ...row } = conv;
          upsertConversation(row);
        }
      }
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
messenger.addEventListener("waiting", (event) => thread.waiting(event.detail.message_id, event.detail.seconds));
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

// -- the agent's own profile: the name customers see ------------------------------------------

const profileForm = $("#profile-form");
const displayName = $("#display-name");
const profileError = $("#profile-error");

function showMe() {
  $("#me-avatar").textContent = initials(me.name);
  $("#me-name").textContent = me.name;
  $("#account-menu summary").setAttribute("aria-label", `Account: ${me.name}`);
  presence.set(me.id, me.name);
  renderPresence();
}

async function loadMe() {
  try {
    const data = await api("GET", "/api/v1/agents/me");
    displayName.value = data.display_name;
  } catch {
    /* the form starts empty */
  }
}

profileForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  profileError.hidden = true;
  try {
    const data = await api("PATCH", "/api/v1/agents/me", { display_name: displayName.value });
    displayName.value = data.display_name;
    me.name = data.name;
    showMe();
    announce(`Customers now see you as ${data.name}`);
  } catch (err) {
    profileError.textContent = err.message;
    profileError.hidden = false;
  }
});

// -- saved replies: the team's, managed in a dialog ------------------------------------------------

const savedDialog = $("#saved-replies");
const savedList = $("#saved-list");
const savedForm = $("#saved-form");
const savedError = $("#saved-error");
const savedFields = { shortcut: $("#saved-shortcut"), title: $("#saved-title-input"), body: $("#saved-body") };
let editingReply = null; // the id of the saved reply the form changes (null: a new one)
let savedOpener = null;

function renderSaved() {
  const items = savedReplies.items;
  savedList.replaceChildren(
    ...(items.length
      ? items.map((c) =>
          h(
            "li",
            { class: "saved__item" },
            h("p", { class: "saved__head" }, h("span", { class: "canned__shortcut" }, `/${c.shortcut}`), " ", h("strong", {}, c.title)),
            h("p", { class: "saved__text" }, c.body),
            h("p", { class: "muted small" }, c.author.id === me.id ? "Yours" : `By ${c.author.name}`),
            c.author.id === me.id
              ? h(
                  "div",
                  { class: "actions" },
                  h("button", { type: "button", class: "btn btn--quiet btn--small", "aria-label": `Edit /${c.shortcut}`, onclick: () => editReply(c) }, "Edit"),
                  h("button", { type: "button", class: "btn btn--quiet btn--small", "aria-label": `Delete /${c.shortcut}`, onclick: () => deleteReply(c) }, "Delete"),
                )
              : null,
          ),
        )
      : [h("li", { class: "muted" }, "No saved replies yet. Write the first one below.")]),
  );
}
savedReplies.addEventListener("change", renderSaved);

function resetSavedForm() {
  editingReply = null;
  for (const field of Object.values(savedFields)) field.value = "";
  $("#saved-form-title").textContent = "New saved reply";
  $("#saved-cancel").hidden = true;
  savedError.hidden = true;
}

function editReply(c) {
  editingReply = c.id;
  savedFields.shortcut.value = c.shortcut;
  savedFields.title.value = c.title;
  savedFields.body.value = c.body;
  $("#saved-form-title").textContent = `Change /${c.shortcut}`;
  $("#saved-cancel").hidden = false;
  savedFields.title.focus();
}

async function deleteReply(c) {
  try {
    await savedReplies.remove(c.id);
    if (editingReply === c.id) resetSavedForm();
    announce(`/${c.shortcut} deleted`);
  } catch (err) {
    savedError.textContent = err.message;
    savedError.hidden = false;
  }
}

function openSaved() {
  savedOpener = document.activeElement;
  $("#account-menu").open = false;
  resetSavedForm();
  savedDialog.hidden = false;
  savedReplies.load(true).catch((err) => {
    savedError.textContent = `Saved replies could not be loaded: ${err.message}`;
    savedError.hidden = false;
  });
  renderSaved();
  $("#saved-close").focus();
}

function closeSaved() {
  savedDialog.hidden = true;
  const back = savedOpener && document.contains(savedOpener) ? savedOpener : $("#account-menu summary");
  back.focus();
}

$("#open-saved-replies").addEventListener("click", openSaved);
$("#saved-close").addEventListener("click", closeSaved);
$("#saved-cancel").addEventListener("click", resetSavedForm);
savedDialog.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    event.preventDefault();
    closeSaved();
  }
});
savedForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  savedError.hidden = true;
  const fields = Object.fromEntries(Object.entries(savedFields).map(([name, el]) => [name, el.value]));
  try {
    const saved = await savedReplies.save(editingReply, fields);
    announce(`/${saved.shortcut} saved`);
    resetSavedForm();
  } catch (err) {
    savedError.textContent = err.message;
    savedError.hidden = false;
  }
});

// -- start ------------------------------------------------------------------------------------------

async function resync() {
  socket.stop();
  conversations.clear();
  rows.clear();
  listed.clear();
  cursor = null;
  hasMore = false;
  listSeq++;
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
  drawFilters();
  setupMenus();
  loadMe();
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
  loadLabels();
  route();
  for (const item of messenger.pending()) if (!item.failed) messenger.transmit(item);
}

start();

window.parley = { socket, thread, messenger, composer, conversations, notes, workflow };
