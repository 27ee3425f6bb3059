// Small pieces shared by both pages: the connection indicator, the
// "… is typing" line, the problem banner and optimistic edits.

import { api } from "./api.js";

const LABELS = {
  connecting: "Connecting…",
  resuming: "Connecting…",
  live: "Connected",
  offline: "Offline, reconnecting…",
  closed: "Disconnected",
};

// How long the connection must stay lost before the offline banner shows.
const BANNER_AFTER = 1000;

export class ConnectionStatus {
  constructor({ el, banner, retry, socket }) {
    this.el = el;
    this.banner = banner;
    this.socket = socket;
    this.everLive = false;
    this.bannerTimer = null;
    socket.addEventListener("state", (event) => this.show(event.detail));
    if (retry) retry.addEventListener("click", () => socket.reconnectNow());
    this.show(socket.state === "closed" ? "connecting" : socket.state);
  }

  show(state) {
    this.el.dataset.state = state;
    document.body.dataset.connection = state;
    const label = this.el.querySelector("[data-label]") || this.el;
    label.textContent = LABELS[state] || state;
    if (state === "live") {
      this.everLive = true;
      clearTimeout(this.bannerTimer);
      this.bannerTimer = null;
      if (this.banner) this.banner.hidden = true;
    } else if (state === "offline" && this.banner && this.banner.hidden && !this.bannerTimer) {
      // A blip under a second is not worth a banner. The second counts from
      // the first time the connection was lost: the reconnect attempts that
      // follow (offline, connecting, offline…) must not start it again.
      this.bannerTimer = setTimeout(() => {
        this.bannerTimer = null;
        if (this.socket.state !== "live") this.banner.hidden = false;
      }, BANNER_AFTER);
    }
  }
}

const TYPING_SHOWN_FOR = 5000;

export class TypingLine {
  constructor(el) {
    this.el = el;
    this.who = new Map(); // sender id -> {text, timer}
  }

  start(id, text) {
    const current = this.who.get(id);
    if (current) clearTimeout(current.timer);
    this.who.set(id, { text, timer: setTimeout(() => this.stop(id), TYPING_SHOWN_FOR) });
    this.render();
  }

  stop(id) {
    const current = this.who.get(id);
    if (!current) return;
    clearTimeout(current.timer);
    this.who.delete(id);
    this.render();
  }

  clear() {
    for (const { timer } of this.who.values()) clearTimeout(timer);
    this.who.clear();
    this.render();
  }

  render() {
    const texts = [...this.who.values()].map((x) => x.text);
    this.el.textContent = texts.join(" ");
    this.el.classList.toggle("typing--on", texts.length > 0);
  }
}

/** A banner that shows a problem for a few seconds (text only). */
export function problemBanner(el, ms = 8000) {
  let timer;
  return function show(text) {
    el.textContent = text;
    el.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => {
      el.hidden = true;
    }, ms);
  };
}

/** Edit a message optimistically in `thread`; put the old body back if the server refuses. */
export async function editMessage(thread, id, body, showProblem) {
  const before = thread.setBody(id, body, new Date().toISOString());
  try {
    const data = await api("PATCH", `/api/v1/messages/${id}`, { body });
    thread.upsert(data.message);
  } catch (err) {
    if (before) thread.setBody(id, before.body, before.edited_at);
    showProblem(`Your edit was not saved: ${err.message}`);
  }
}
