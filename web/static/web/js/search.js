// Search boxes: the agent dashboard's (GET /api/v1/search; results replace
// the conversation list and link to their conversation) and the customer
// page's (GET /api/v1/messages/search; a result shows its message).

import { api } from "./api.js";
import { formatAgo, formatFull, h, initials } from "./dom.js";

const MARK_START = "\u0002";
const MARK_END = "\u0003";
const DELAY_MS = 250;
const LIMIT = 30;

// A highlight as nodes: the API marks each match between U+0002 and U+0003
// (docs/search.md); the text between is shown as text, each match in a
// <mark>. Nothing in it is ever parsed as HTML.
export function highlightNodes(highlight) {
  const nodes = [];
  for (const [i, piece] of highlight.split(MARK_START).entries()) {
    const end = piece.indexOf(MARK_END);
    if (i === 0 || end < 0) {
      if (piece) nodes.push(document.createTextNode(piece.replaceAll(MARK_END, "")));
      continue;
    }
    nodes.push(h("mark", { text: piece.slice(0, end) }));
    const rest = piece.slice(end + 1).replaceAll(MARK_END, "");
    if (rest) nodes.push(document.createTextNode(rest));
  }
  return nodes;
}

// The dashboard's result: a link to the conversation (the page's router opens it).
export function agentResult(result) {
  const name = result.customer_name || "Unnamed customer";
  const message = result.message;
  const at = message ? new Date(message.sent_at) : null;
  const who = !message ? "Customer" : message.sender.kind === "agent" ? `${message.sender.name || "Agent"}:` : "";
  return h(
    "li",
    { class: "conversations__item" },
    h(
      "a",
      { class: "conv search-result", href: `#${result.customer_id}`, dataset: { customerId: result.customer_id } },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(name)),
      h(
        "span",
        { class: "conv__main" },
        h(
          "span",
          { class: "conv__top" },
          h("span", { class: "conv__name" }, name),
          at ? h("time", { class: "conv__time", datetime: message.sent_at, title: formatFull(at) }, formatAgo(at)) : null,
        ),
        snippet(who, result.highlight),
      ),
    ),
  );
}

// The matched fragment, after who wrote it.
export function snippet(who, highlight) {
  return h(
    "span",
    { class: "search-result__text" },
    who ? h("span", { class: "search-result__who" }, `${who} `) : null,
    highlightNodes(highlight),
  );
}

// Wires a search form: while the box holds a query, GET ``path`` and show
// each result as ``render`` builds it in ``list`` (``hide``, if given, is
// hidden meanwhile); Escape or emptying the box ends the search.
export class SearchBox {
  constructor({ form, input, list, status, hide = null, path = "/api/v1/search", render = agentResult }) {
    Object.assign(this, { form, input, list, status, hide, path, render });
    this.seq = 0;
    this.timer = null;
    input.addEventListener("input", () => this.soon());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.clear();
    });
  }

  get active() {
    return this.input.value.trim() !== "";
  }

  soon() {
    clearTimeout(this.timer);
    if (!this.active) {
      this.show(false);
      return;
    }
    this.timer = setTimeout(() => this.run(), DELAY_MS);
  }

  clear() {
    this.input.value = "";
    this.soon();
  }

  show(on) {
    this.list.hidden = !on;
    this.status.hidden = !on;
    if (this.hide) this.hide.hidden = on;
    if (!on) {
      this.seq++;
      this.list.replaceChildren();
    }
  }

  async run() {
    clearTimeout(this.timer);
    const q = this.input.value.trim().slice(0, 200);
    if (!q) return;
    const seq = ++this.seq;
    this.show(true);
    this.status.textContent = "Searching…";
    try {
      const data = await api("GET", `${this.path}?q=${encodeURIComponent(q)}&limit=${LIMIT}`);
      if (seq !== this.seq) return; // a newer query is on its way
      this.list.replaceChildren(...data.results.map((result) => this.render(result)));
      const n = data.results.length;
      this.status.textContent = n ? `${n}${n === LIMIT ? "+" : ""} result${n === 1 ? "" : "s"}` : "No matches.";
    } catch (err) {
      if (seq !== this.seq) return;
      this.status.textContent = `Search failed: ${err.message}`;
    }
  }
}
