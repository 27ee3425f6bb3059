// Small DOM helpers. Data is only ever written as text: h() turns every
// string child into a Text node and sets attributes one by one, so nothing
// a customer or an agent typed is ever parsed as HTML.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`missing element ${selector}`);
  return el;
}

export function readConfig(id = "parley-config") {
  return JSON.parse(document.getElementById(id).textContent);
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;

// A message body as nodes: text, with web links made clickable. Links are
// built with the DOM API and only for http(s) URLs; everything else is text.
export function bodyNodes(body) {
  const nodes = [];
  let last = 0;
  for (const match of body.matchAll(URL_PATTERN)) {
    let url = match[0];
    // Leave trailing punctuation of the sentence out of the link.
    const trimmed = url.replace(/[).,;:!?\]]+$/, "");
    const end = match.index + trimmed.length;
    if (match.index > last) nodes.push(document.createTextNode(body.slice(last, match.index)));
    url = trimmed;
    let safe = null;
    try {
      const parsed = new URL(url);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") safe = parsed.href;
    } catch {
      safe = null;
    }
    nodes.push(
      safe
        ? h("a", { href: safe, target: "_blank", rel: "noopener noreferrer nofollow" }, url)
        : document.createTextNode(url),
    );
    last = end;
  }
  if (last < body.length) nodes.push(document.createTextNode(body.slice(last)));
  return nodes;
}

export function uuid4() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Pages served over plain http (not a secure context) have no randomUUID.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// -- time -------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export const formatTime = (d) => timeFormat.format(d);

// "2:51 PM" today, "Yesterday, 2:51 PM", else "12 Mar, 2:51 PM".
export function formatWhen(d, now = new Date()) {
  const day = formatDay(d, now);
  if (day === "Today") return formatTime(d);
  if (day === "Yesterday") return `Yesterday, ${formatTime(d)}`;
  return `${dateFormat.format(d)}, ${formatTime(d)}`;
}
export const formatFull = (d) => fullFormat.format(d);

export function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function formatDay(d, now = new Date()) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const that = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const days = Math.round((today - that) / 86400000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return dayFormat.format(d);
}

// "now", "5 min", "3 h", "Yesterday", "12 Mar": short enough for a list row.
export function formatAgo(d, now = new Date()) {
  const seconds = Math.max(0, (now - d) / 1000);
  if (seconds < 60) return "now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (formatDay(d, now) === "Today") return `${Math.floor(seconds / 3600)} h`;
  if (formatDay(d, now) === "Yesterday") return "Yesterday";
  return dateFormat.format(d);
}

// -- announcements for screen readers ----------------------------------------

let announcer = null;

export function announce(text) {
  if (!announcer) {
    announcer = h("div", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    document.body.append(announcer);
  }
  announcer.textContent = "";
  // A separate task, so the same sentence twice is still read twice.
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}
