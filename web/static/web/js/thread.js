// One conversation's timeline: merging what the server says (HTTP pages,
// live frames, replays) with what this page is still sending, and drawing it.
//
// Every message is keyed by its id, so whatever path a message arrives by,
// and however often, it is shown once. A message's own events are appended
// in order, so a copy with a lower position is older and is ignored.

import { formatSize } from "./attachments.js";
import { bodyNodes, dayKey, formatDay, formatFull, formatTime, h } from "./dom.js";
import { icon } from "./icons.js";

const GROUP_GAP_MS = 5 * 60 * 1000;

// A private note (agents only) as a timeline item: keyed by its note id,
// never "mine" or "theirs", never unread, never editable.
export function noteItem(note) {
  return {
    kind: "note",
    message_id: note.note_id,
    customer_id: note.customer_id,
    sender: { kind: "note", id: note.author ? note.author.id : "", name: note.author ? note.author.name : "" },
    body: note.body,
    sent_at: note.created_at,
    edited_at: null,
    read_at: note.created_at,
    position: note.position,
  };
}

const isNote = (msg) => msg.kind === "note";

export class Thread {
  // `files` (optional): how attachments load when the page has no cookie for
  // them (the widget's frame): {image(img, url), open(event, url, name)}.
  // Without it they are plain links and images, loaded with the page's cookie.
  constructor({ list, scroller, jump, me, names, onSeen, onEdit, onRetry, onDiscard, files = null }) {
    this.files = files;
    this.list = list;
    this.scroller = scroller;
    this.jump = jump;
    this.me = me; // {kind, id}
    this.names = names || {}; // labels: {self: "You"}
    this.onSeen = onSeen || (() => {});
    this.onEdit = onEdit || (() => {});
    this.onRetry = onRetry || (() => {});
    this.onDiscard = onDiscard || (() => {});
    this.entries = new Map();
    this.order = [];
    this.editableId = null;
    this.editingId = null; // the message the composer is editing, marked in the timeline
    this.onScreen = new Set();
    // Whether the reader is at the newest message. While they are, anything
    // that changes the timeline's height or the room it has (the offline
    // banner coming or going, the message box growing, a message re-drawn)
    // keeps the newest message in view; once they scroll up, nothing moves.
    this.stuck = true;
    this.waitTimer = null;
    this.observer = new IntersectionObserver((records) => this.observed(records), {
      root: scroller,
      threshold: [0, 0.5, 1],
    });
    scroller.addEventListener("scroll", () => {
      this.stuck = this.atBottom();
      if (this.stuck) this.jump.hidden = true;
    });
    this.resizer = new ResizeObserver(() => {
      // Not atBottom(): "near the bottom" would leave a banner's height hidden.
      if (this.stuck) this.scrollToBottom();
    });
    this.resizer.observe(scroller);
    this.resizer.observe(list);
    jump.addEventListener("click", () => {
      this.scrollToBottom(true);
      jump.hidden = true;
    });
  }

  // -- model ------------------------------------------------------------------

  isMine(msg) {
    return !isNote(msg) && msg.sender.kind === this.me.kind;
  }

  isOwn(msg) {
    return !isNote(msg) && msg.sender.kind === this.me.kind && msg.sender.id === this.me.id;
  }

  get size() {
    return this.entries.size;
  }

  has(id) {
    return this.entries.has(id);
  }

  get(id) {
    const entry = this.entries.get(id);
    return entry ? entry.msg : null;
  }

  clear() {
    this.observer.disconnect();
    this.onScreen.clear();
    this.entries.clear();
    this.order = [];
    this.editableId = null;
    this.editingId = null;
    this.stuck = true;
    this.list.replaceChildren();
  }

  // A message (or a note, `kind: "note"`) from the server. Returns true when it is new to this thread.
  upsert(item) {
    const msg = item.kind === "note" ? noteItem(item) : item;
    const entry = this.entries.get(msg.message_id);
    if (entry && !entry.local && entry.msg.position >= msg.position) return false;
    const isNew = !entry;
    const next = { msg: { ...msg }, local: null, error: null, el: entry ? entry.el : null };
    // A read or edit seen before this copy must not be undone by it.
    if (entry && entry.msg.read_at && !next.msg.read_at) next.msg.read_at = entry.msg.read_at;
    this.entries.set(msg.message_id, next);
    this.place(next, entry);
    this.afterChange();
    return isNew;
  }

  // A message this page sent and the server has not confirmed yet.
  addPending({ message_id, body, attachments, customer_id, created_at }) {
    if (this.entries.has(message_id)) return;
    const msg = {
      message_id,
      customer_id,
      sender: { kind: this.me.kind, id: this.me.id, name: this.me.name || "" },
      body,
      sent_at: created_at || new Date().toISOString(),
      edited_at: null,
      read_at: null,
      // Uploaded, not yet sent: names and sizes only (no url until the server has the message).
      attachments: (attachments || []).map((a) => ({ ...a, url: null, thumbnail_url: null })),
      position: -1,
    };
    const entry = { msg, local: "sending", error: null, el: null };
    this.entries.set(message_id, entry);
    this.place(entry, null);
    this.afterChange();
  }

  // A note this page is still saving.
  addPendingNote({ note_id, body, customer_id, created_at, failed }) {
    if (this.entries.has(note_id)) return;
    const msg = noteItem({ note_id, customer_id, body, created_at, author: { id: this.me.id, name: this.me.name || "" }, position: -1 });
    const entry = { msg, local: failed ? "failed" : "sending", error: failed || null, el: null };
    this.entries.set(note_id, entry);
    this.place(entry, null);
    this.afterChange();
    this.scrollToBottom();
  }

  // The server took it (ack) though its copy has not arrived yet.
  confirm(id) {
    const entry = this.entries.get(id);
    if (!entry || !entry.local) return;
    entry.local = null;
    entry.msg.position = Math.max(entry.msg.position, 0);
    this.render(entry);
    this.updateEditable();
  }

  fail(id, detail) {
    const entry = this.entries.get(id);
    if (!entry || !entry.local) return;
    entry.local = "failed";
    entry.error = detail;
    this.render(entry);
  }

  // Held back by the send budget: it goes by itself in `seconds`; until then
  // the message says so, counting down, instead of a bare "Sending…".
  waiting(id, seconds) {
    const entry = this.entries.get(id);
    if (!entry || !entry.local) return;
    entry.local = "waiting";
    entry.waitUntil = Date.now() + seconds * 1000;
    this.render(entry);
    if (!this.waitTimer) {
      this.waitTimer = setInterval(() => {
        let any = false;
        for (const e of this.entries.values()) {
          if (e.local !== "waiting") continue;
          if (Date.now() >= e.waitUntil) e.local = "sending";
          else any = true;
          this.render(e);
        }
        if (!any) {
          clearInterval(this.waitTimer);
          this.waitTimer = null;
        }
      }, 1000);
    }
  }

  retrying(id) {
    const entry = this.entries.get(id);
    if (!entry || entry.local !== "failed") return;
    entry.local = "sending";
    entry.error = null;
    this.render(entry);
  }

  remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.order = this.order.filter((x) => x !== id);
    this.observer.unobserve(entry.el);
    this.onScreen.delete(id);
    entry.el.remove();
    this.updateEditable();
  }

  markRead(id, readAt, position) {
    const entry = this.entries.get(id);
    if (!entry || entry.msg.read_at) return;
    entry.msg.read_at = readAt;
    if (Number.isInteger(position)) entry.msg.position = Math.max(entry.msg.position, position);
    this.render(entry);
    this.observer.unobserve(entry.el);
    this.onScreen.delete(id);
  }

  // Optimistic edit (reverted by the caller on error).
  setBody(id, body, editedAt) {
    const entry = this.entries.get(id);
    if (!entry) return null;
    const before = { body: entry.msg.body, edited_at: entry.msg.edited_at };
    entry.msg.body = body;
    entry.msg.edited_at = editedAt;
    this.render(entry);
    return before;
  }

  unreadFromThem() {
    return this.order.map((id) => this.entries.get(id).msg).filter((m) => !this.isMine(m) && !m.read_at);
  }

  visibleUnread() {
    return [...this.onScreen].filter((id) => {
      const entry = this.entries.get(id);
      return entry && !entry.msg.read_at;
    });
  }

  // Mark the message being edited (or none, with null).
  setEditing(id) {
    if (id === this.editingId) return;
    const old = this.editingId ? this.entries.get(this.editingId) : null;
    this.editingId = id && this.entries.has(id) ? id : null;
    if (old) this.render(old);
    const entry = this.editingId ? this.entries.get(this.editingId) : null;
    if (entry) {
      this.render(entry);
      entry.el.scrollIntoView({ block: "nearest" });
    }
  }

  lastEditable() {
    return this.editableId ? this.entries.get(this.editableId).msg : null;
  }

  // -- drawing ------------------------------------------------------------------

  sortKey(msg) {
    return `${msg.sent_at}|${String(msg.position < 0 ? 9e15 : msg.position).padStart(16, "0")}`;
  }

  place(entry, previous) {
    const id = entry.msg.message_id;
    const key = this.sortKey(entry.msg);
    const wasAt = this.order.indexOf(id);
    if (wasAt >= 0 && previous && this.sortKey(previous.msg) === key) {
      this.render(entry);
      return;
    }
    if (wasAt >= 0) this.order.splice(wasAt, 1);
    let index = this.order.length;
    while (index > 0 && this.sortKey(this.entries.get(this.order[index - 1]).msg) > key) index--;
    this.order.splice(index, 0, id);
    if (wasAt < 0 && index === this.order.length - 1) {
      // The usual case: a new message at the end.
      const stick = this.atBottom();
      this.appendEl(entry);
      if (stick || this.isMine(entry.msg)) this.scrollToBottom();
      else if (!this.isMine(entry.msg)) this.jump.hidden = false;
    } else if (wasAt === index && entry.el) {
      this.render(entry);
    } else {
      this.redraw();
    }
  }

  appendEl(entry) {
    const lastId = this.order[this.order.length - 2];
    const last = lastId ? this.entries.get(lastId).msg : null;
    const at = new Date(entry.msg.sent_at);
    if (!last || dayKey(new Date(last.sent_at)) !== dayKey(at)) {
      this.list.append(h("li", { class: "day", role: "separator" }, h("span", {}, formatDay(at))));
    }
    if (!entry.el) entry.el = h("li", { class: "msg" });
    this.render(entry, last);
    this.list.append(entry.el);
    this.watch(entry);
  }

  redraw() {
    const stick = this.atBottom();
    const items = [];
    let last = null;
    for (const id of this.order) {
      const entry = this.entries.get(id);
      const at = new Date(entry.msg.sent_at);
      if (!last || dayKey(new Date(last.sent_at)) !== dayKey(at)) {
        items.push(h("li", { class: "day", role: "separator" }, h("span", {}, formatDay(at))));
      }
      if (!entry.el) entry.el = h("li", { class: "msg" });
      this.render(entry, last);
      items.push(entry.el);
      this.watch(entry);
      last = entry.msg;
    }
    this.list.replaceChildren(...items);
    if (stick) this.scrollToBottom();
  }

  watch(entry) {
    if (!this.isMine(entry.msg) && !entry.msg.read_at) this.observer.observe(entry.el);
  }

  previousOf(id) {
    const i = this.order.indexOf(id);
    return i > 0 ? this.entries.get(this.order[i - 1]).msg : null;
  }

  render(entry, previous = undefined) {
    const { msg } = entry;
    const prev = previous === undefined ? this.previousOf(msg.message_id) : previous;
    const mine = this.isMine(msg);
    const own = this.isOwn(msg);
    const note = isNote(msg);
    const continued =
      !note &&
      prev &&
      !isNote(prev) &&
      prev.sender.kind === msg.sender.kind &&
      prev.sender.id === msg.sender.id &&
      new Date(msg.sent_at) - new Date(prev.sent_at) < GROUP_GAP_MS &&
      dayKey(new Date(prev.sent_at)) === dayKey(new Date(msg.sent_at));
    const state = entry.local || (note ? "saved" : msg.read_at ? "read" : "sent");
    const el = entry.el || h("li", { class: "msg" });
    entry.el = el;
    const editing = msg.message_id === this.editingId;
    el.className = `msg ${note ? "msg--note" : mine ? "msg--mine" : "msg--theirs"}${continued ? " msg--continued" : ""}${editing ? " msg--editing" : ""}`;
    el.dataset.messageId = msg.message_id;
    el.dataset.sender = msg.sender.kind;
    el.dataset.state = state;
    if (editing) el.setAttribute("aria-current", "true");
    else el.removeAttribute("aria-current");

    let author = own ? this.names.self || "You" : msg.sender.name || (msg.sender.kind === "agent" ? "Support" : "Customer");
    if (note) author = `Note · ${msg.sender.id === this.me.id ? this.names.self || "You" : msg.sender.name || "Agent"}`;
    const sentAt = new Date(msg.sent_at);
    const meta = h("div", { class: "msg__meta" });
    meta.append(
      h("time", { datetime: msg.sent_at, title: formatFull(sentAt) }, entry.local === "sending" || entry.local === "waiting" ? "" : formatTime(sentAt)),
    );
    if (!note && msg.sender.kind === "system") meta.append(h("span", { class: "msg__automatic" }, "Automatic reply"));
    if (msg.edited_at) meta.append(h("span", { class: "msg__edited", title: `Edited ${formatFull(new Date(msg.edited_at))}` }, "Edited"));
    if (mine) meta.append(h("span", { class: "msg__status" }, statusText(state)));
    if (note) meta.append(h("span", { class: "msg__private" }, entry.local === "sending" ? "Saving…" : entry.local === "failed" ? "Not saved" : "Only agents see this"));
    if (editing) meta.append(h("span", { class: "msg__editing" }, "Editing"));
    if (entry.local === "failed") {
      meta.append(
        h("button", { type: "button", class: "link-button", onclick: () => this.onRetry(msg.message_id) }, "Retry"),
        h("button", { type: "button", class: "link-button", onclick: () => this.onDiscard(msg.message_id) }, "Discard"),
      );
    }
    if (msg.message_id === this.editableId) {
      meta.append(
        h(
          "button",
          { type: "button", class: "link-button msg__edit", "aria-label": "Edit your last message", onclick: () => this.onEdit(msg) },
          "Edit",
        ),
      );
    }
    const children = [
      h("div", { class: "msg__author" }, author),
      h(
        "div",
        { class: "msg__bubble" },
        msg.body ? h("p", { class: "msg__body" }, bodyNodes(msg.body)) : null,
        attachmentList(msg.attachments, this.files),
      ),
      meta,
    ];
    if (entry.error) children.push(h("p", { class: "msg__error", role: "alert" }, entry.error));
    if (entry.local === "waiting") {
      const left = Math.max(1, Math.ceil((entry.waitUntil - Date.now()) / 1000));
      children.push(h("p", { class: "msg__wait" },
        `You are sending faster than we can take messages. This one goes out by itself in ${left} s.`));
    }
    el.replaceChildren(...children);
  }

  afterChange() {
    this.updateEditable();
  }

  updateEditable() {
    let candidate = null;
    for (let i = this.order.length - 1; i >= 0; i--) {
      const entry = this.entries.get(this.order[i]);
      if (this.isOwn(entry.msg)) {
        if (!entry.local) candidate = entry.msg.message_id;
        break;
      }
    }
    if (candidate === this.editableId) return;
    const old = this.editableId ? this.entries.get(this.editableId) : null;
    this.editableId = candidate;
    if (old) this.render(old);
    if (candidate) this.render(this.entries.get(candidate));
  }

  // -- scrolling and being seen ------------------------------------------------------

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToBottom(smooth = false) {
    const s = this.scroller;
    this.stuck = true;
    s.scrollTo({ top: s.scrollHeight, behavior: smooth ? "smooth" : "auto" });
  }

  // After the first load: to the first message not yet read, else the end.
  scrollToFirstUnread() {
    const first = this.unreadFromThem()[0];
    if (first) {
      const el = this.entries.get(first.message_id).el;
      el.scrollIntoView({ block: "center" });
      this.stuck = this.atBottom();
    } else {
      this.scrollToBottom();
    }
  }

  observed(records) {
    const seen = [];
    for (const record of records) {
      const id = record.target.dataset.messageId;
      const rootHeight = record.rootBounds ? record.rootBounds.height : 0;
      // Half the message on screen, or half the screen filled by a long one.
      const visible =
        record.isIntersecting &&
        (record.intersectionRatio >= 0.5 || (rootHeight > 0 && record.intersectionRect.height >= rootHeight / 2));
      if (visible) {
        this.onScreen.add(id);
        seen.push(id);
      } else {
        this.onScreen.delete(id);
      }
    }
    if (seen.length) this.onSeen(seen);
  }
}

// Only the server's own download paths become links or images (never a URL from anywhere else).
const ATTACHMENT_PATH = /^\/api\/v1\/attachments\/[0-9a-f-]{36}\/(content|thumbnail)$/;

function attachmentHref(url) {
  return typeof url === "string" && ATTACHMENT_PATH.test(url) ? url : null;
}

// A message's files: images as thumbnails linking to the full image, other
// files as a download link with name and size. Built as DOM, names as text.
// With `files`, the bytes come through it (fetched with a token) instead.
function attachmentList(attachments, files) {
  if (!attachments || !attachments.length) return null;
  return h(
    "ul",
    { class: "msg__attachments" },
    attachments.map((a) => {
      const href = attachmentHref(a.url);
      const thumb = attachmentHref(a.thumbnail_url);
      const label = `${a.name} (${formatSize(a.size)})`;
      const open = files && href ? (event) => files.open(event, href, a.name) : undefined;
      if (href && thumb) {
        const img = h("img", { src: files ? undefined : thumb, alt: a.name, loading: "lazy", class: "msg__thumb" });
        if (files) files.image(img, thumb);
        return h(
          "li",
          { class: "msg__attachment msg__attachment--image" },
          h("a", { href, target: "_blank", rel: "noopener", title: label, onclick: open }, img),
        );
      }
      const content = [icon("file"), h("span", { class: "msg__file-name" }, a.name), h("span", { class: "msg__file-size" }, formatSize(a.size))];
      return h(
        "li",
        { class: "msg__attachment msg__attachment--file" },
        href
          ? h("a", { href, download: a.name, class: "msg__file", title: label, onclick: open }, content)
          : h("span", { class: "msg__file" }, content),
      );
    }),
  );
}

function statusText(state) {
  return { sending: "Sending…", waiting: "Waiting to send", failed: "Not sent", read: "Read" }[state] || "Sent";
}
