// Saved replies (canned responses) on the dashboard: offered in the reply
// box when the agent types "/", and managed in a dialog.
//
// Typing "/" at the start of the box or after a space opens a list of the
// team's saved replies (GET /api/v1/canned-responses), narrowed by what
// follows ("/ref" finds /refund and "Refund on its way"). Up and Down move,
// Enter or Tab insert, Escape closes, and so does a click elsewhere. The
// reply replaces "/ref" with its body, its placeholders filled in from the
// open conversation's customer and the agent's own name; the agent can
// still change it before sending. The box keeps its role (a text box) and
// points at the list (aria-controls, aria-activedescendant), whose items
// are options, so a screen reader follows the choice.

import { api } from "./api.js";
import { h, uuid4 } from "./dom.js";

const SHOWN = 8;
const PLACEHOLDER = /\{\{\s*([a-z_.]+)\s*\}\}/g;

function firstName(name) {
  return String(name || "").trim().split(/\s+/)[0] || "";
}

// A saved reply's body with {{customer.name}}, {{customer.first_name}},
// {{agent.name}} and {{agent.first_name}} filled in (text only; anything
// else is left as written).
export function fill(body, { customer, agent }) {
  const values = {
    "customer.name": customer || "",
    "customer.first_name": firstName(customer),
    "agent.name": agent || "",
    "agent.first_name": firstName(agent),
  };
  return body.replace(PLACEHOLDER, (whole, key) => (key in values ? values[key] : whole));
}

// A reply's first words, whole, for the list (it wraps: nothing is cut off unseen).
function shorten(text, limit) {
  const flat = text.replace(/\s+/g, " ").trim();
  if (flat.length <= limit) return flat;
  return `${flat.slice(0, flat.lastIndexOf(" ", limit) > limit / 2 ? flat.lastIndexOf(" ", limit) : limit)}…`;
}

// The "/query" being typed just before the caret, if any: {start, query}.
export function slashQuery(value, caret) {
  const before = value.slice(0, caret);
  const match = before.match(/(^|\s)\/([^\s/]*)$/);
  if (!match) return null;
  return { start: caret - match[2].length - 1, query: match[2].toLowerCase() };
}

export class SavedReplies extends EventTarget {
  // The team's saved replies, read once and again after each change.
  // Events: "change".
  constructor() {
    super();
    this.items = [];
    this.ready = false; // read at least once
    this.loaded = null;
  }

  load(force = false) {
    if (!this.loaded || force) {
      this.loaded = api("GET", "/api/v1/canned-responses").then(
        (data) => {
          this.items = data.canned_responses;
          this.ready = true;
          this.dispatchEvent(new Event("change"));
        },
        (err) => {
          this.loaded = null;
          throw err;
        },
      );
    }
    return this.loaded;
  }

  matching(query) {
    const q = query.toLowerCase();
    const starts = this.items.filter((c) => c.shortcut.startsWith(q));
    const others = this.items.filter((c) => !c.shortcut.startsWith(q) && (c.shortcut.includes(q) || c.title.toLowerCase().includes(q)));
    return [...starts, ...others];
  }

  async save(id, fields) {
    const saved = id
      ? await api("PATCH", `/api/v1/canned-responses/${id}`, fields)
      : await api("POST", "/api/v1/canned-responses", fields);
    await this.load(true);
    return saved;
  }

  async remove(id) {
    await api("DELETE", `/api/v1/canned-responses/${id}`);
    await this.load(true);
  }
}

export class CannedMenu {
  // input: the reply box; list: the <ul role="listbox">; status: a live
  // line for "no saved reply matches"; replies: SavedReplies; context():
  // {customer, agent} names; onInsert(): after a reply went into the box.
  constructor({ input, list, status, replies, context, onInsert }) {
    this.input = input;
    this.list = list;
    this.status = status;
    this.replies = replies;
    this.context = context;
    this.onInsert = onInsert || (() => {});
    this.open = false;
    this.shown = [];
    this.active = 0;
    this.token = null;
    this.blurred = null; // the timer that closes the list after a blur
    this.prefix = `canned-${uuid4().slice(0, 8)}`;
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", list.id);
    input.addEventListener("input", () => this.update());
    input.addEventListener("click", () => this.update());
    // A click elsewhere closes the list, a moment later. The focus may come
    // back first (the Reply button, a menu closed with Escape and a click
    // in the box): then the list stays, and so does the "/" being typed,
    // which must still show the saved replies when they arrive ("change").
    input.addEventListener("blur", () => {
      clearTimeout(this.blurred);
      this.blurred = setTimeout(() => this.close(), 150);
    });
    input.addEventListener("focus", () => clearTimeout(this.blurred));
    replies.addEventListener("change", () => this.open && this.update());
  }

  update() {
    const found = slashQuery(this.input.value, this.input.selectionStart || 0);
    if (!found) {
      this.close();
      return;
    }
    this.token = found;
    this.replies.load().catch(() => {
      this.status.textContent = "Saved replies could not be loaded.";
    });
    this.shown = this.replies.matching(found.query).slice(0, SHOWN);
    this.active = Math.min(this.active, Math.max(0, this.shown.length - 1));
    this.render();
  }

  render() {
    this.open = true;
    this.list.hidden = this.shown.length === 0;
    this.status.hidden = false;
    this.status.textContent = this.shown.length
      ? `${this.shown.length} saved ${this.shown.length === 1 ? "reply" : "replies"}: Up and Down to choose, Enter to insert, Escape to close.`
      : !this.replies.ready
        ? "Loading saved replies…"
        : this.replies.items.length
          ? `No saved reply starts with /${this.token.query}.`
          : "No saved replies yet: add them from your account menu, under Saved replies.";
    this.list.replaceChildren(
      ...this.shown.map((c, i) =>
        h(
          "li",
          {
            id: `${this.prefix}-${i}`,
            class: "canned__option",
            role: "option",
            "aria-selected": String(i === this.active),
            onmousedown: (event) => {
              event.preventDefault(); // keep the focus in the box
              this.insert(i);
            },
          },
          h("span", { class: "canned__shortcut" }, `/${c.shortcut}`),
          h("span", { class: "canned__title" }, c.title),
          h("span", { class: "canned__body" }, shorten(fill(c.body, this.context()), 90)),
        ),
      ),
    );
    if (this.shown.length) {
      this.input.setAttribute("aria-activedescendant", `${this.prefix}-${this.active}`);
      const active = this.list.children[this.active];
      if (active) active.scrollIntoView({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  close() {
    if (!this.open) return;
    this.open = false;
    this.shown = [];
    this.active = 0;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.status.hidden = true;
    this.status.textContent = "";
    this.input.removeAttribute("aria-activedescendant");
  }

  // The composer asks first: true when the key was the menu's.
  keydown(event) {
    if (!this.open) return false;
    if (event.key === "Escape") {
      event.preventDefault();
      this.close();
      return true;
    }
    if (!this.shown.length) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.shown.length) % this.shown.length;
      this.render();
      return true;
    }
    if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
      event.preventDefault();
      this.insert(this.active);
      return true;
    }
    return false;
  }

  insert(index) {
    const chosen = this.shown[index];
    if (!chosen || !this.token) return;
    const text = fill(chosen.body, this.context());
    const { value } = this.input;
    const end = this.input.selectionStart || this.token.start + 1 + this.token.query.length;
    this.input.value = value.slice(0, this.token.start) + text + value.slice(end);
    const caret = this.token.start + text.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.input.dispatchEvent(new Event("input", { bubbles: true }));
    this.input.focus();
    this.onInsert(chosen);
  }
}
