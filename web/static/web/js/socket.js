// The page's websocket: connect, resume from the last position, keep alive,
// and reconnect with exponential backoff and jitter.
//
// Positions come back in the server's delivery order, which is the log's
// reading order; the last one delivered is what `resume` hands back, so a
// reconnect continues exactly after it (the server replays what was missed).
// When the server cannot vouch for what this socket got it sends `resync`
// (answered with `resume` on the same socket) or closes with 4000 (answered
// by reconnecting and resuming): either way nothing is missed, without a reload.
//
// A page authenticates the socket with its cookie; the website widget's
// frame, which has none, with its customer token (`?token=`, the protocol's
// way for apps: docs/protocol.md).
//
// Events (EventTarget): "frame" (detail: the frame), "state" (detail:
// "connecting" | "resuming" | "live" | "offline" | "closed"), "live" (after
// each completed resume), "unauthorized" (the server refused who we are),
// "erased" (the customer was erased: the server closed with 4410, after its
// `customer.erased` frame or in place of the handshake, and refuses every
// reconnect with the same code, so this socket stops for good).

const POSITIONED = new Set(["message.sent", "message.edited", "message.read", "badge", "conversation.updated"]);
// Close codes after which reconnecting cannot help (docs/protocol.md): the page is told, and stops.
const FINAL = new Map([[4401, "unauthorized"], [4403, "unauthorized"], [4410, "erased"]]);
const BASE_DELAY = 500;
const MAX_DELAY = 30000;
const PING_EVERY = 25000;
const PONG_WITHIN = 10000;

export class ParleySocket extends EventTarget {
  constructor(path, { position = 0, token = null } = {}) {
    super();
    this.path = path;
    this.token = token; // read at each connect: a renewed token is used from the next one
    this.position = position;
    this.ws = null;
    this.state = "closed";
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = false;
    this.nextDelay = 0;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.abandon(4000, "offline"));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  get live() {
    return this.state === "live";
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  // Close the current connection as a network failure would (tests and the
  // "reconnect" button use it); the usual backoff brings it back.
  drop() {
    this.abandon(4000, "dropped by the page");
  }

  // Leave the current connection now, without waiting for its closing
  // handshake: when the network is gone the server's close frame may never
  // come, and the page would say "live" until the browser gave up on it.
  abandon(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null; // its own close event, whenever it comes, is ignored
    this.stopKeepAlive();
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
    this.scheduleRetry();
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== "live") return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  reconnectNow() {
    if (this.stopped || this.state === "live" || this.state === "resuming" || this.state === "connecting") return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    return `${scheme}//${location.host}${this.path}${query}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.setState("resuming");
      ws.send(JSON.stringify({ type: "resume", after: this.position }));
      this.keepAlive();
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      this.heard();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopKeepAlive();
      if (FINAL.has(event.code)) {
        this.stopped = true;
        this.setState("closed");
        this.dispatchEvent(new CustomEvent(FINAL.get(event.code), { detail: event.code }));
        return;
      }
      this.scheduleRetry();
    });
  }

  receive(frame) {
    if (frame.type === "pong") return;
    if (frame.type === "resync") {
      // Everything before this frame has been applied, so `position` is exact.
      this.setState("resuming");
      if (this.ws) this.ws.send(JSON.stringify({ type: "resume", after: this.position }));
      return;
    }
    if (frame.type === "resumed") {
      if (Number.isInteger(frame.position)) this.position = frame.position;
      this.attempt = 0;
      this.setState("live");
      this.dispatchEvent(new CustomEvent("live"));
      return;
    }
    if (POSITIONED.has(frame.type) && Number.isInteger(frame.position)) this.position = frame.position;
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.setState("offline");
    // Equal jitter: half the exponential delay, plus a random half, so that a
    // server restart is not met by every client at the same instant.
    const ceiling = Math.min(MAX_DELAY, BASE_DELAY * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.nextDelay = delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  keepAlive() {
    this.stopKeepAlive();
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this.ws.send(JSON.stringify({ type: "ping" }));
      clearTimeout(this.pongTimer);
      // No answer at all: the connection is dead though nobody closed it
      // (a laptop woke up, a proxy forgot us). Start over.
      this.pongTimer = setTimeout(() => this.abandon(4000, "no pong"), PONG_WITHIN);
    }, PING_EVERY);
  }

  heard() {
    clearTimeout(this.pongTimer);
  }

  stopKeepAlive() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}
