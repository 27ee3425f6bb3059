// Writes from this page: sends, reads. Sends go over the socket when it is
// live and over HTTP otherwise; either way they carry the id the message got
// when it was typed, so resending after a reconnect or a reload can only
// ever produce that one message. Reads go over the socket and are redone
// after a reconnect until the server has acknowledged them.
//
// Events: "sent" {message_id, message?}, "failed" {message_id, detail},
// "waiting" {message_id, seconds} (sent faster than the server's budget:
// it goes again by itself then), "problem" {code, detail} (an error frame
// that names none of our writes).

import { api } from "./api.js";

// Retrying these cannot succeed: the user has to change or drop the message.
const PERMANENT = new Set([
  "invalid_body", "invalid_field", "missing_field", "message_id_conflict", "customer_not_found", "frame_too_large",
  "forbidden", "not_sender", "unknown_attachment", "attachment_already_sent", "too_many_attachments",
  "duplicate_attachment",
]);

export class Messenger extends EventTarget {
  constructor({ socket, outbox, sendPath, agent = false }) {
    super();
    this.agent = agent; // agents name the conversation in every send
    this.socket = socket;
    this.outbox = outbox;
    this.sendPath = sendPath; // item => URL of the HTTP send
    this.reads = new Map(); // message_id -> "pending" | "sent"
    this.readDone = new Set();
    this.httpInFlight = new Set();
    this.waiting = new Set(); // message ids held back until the send budget allows them
    socket.addEventListener("live", () => this.flush());
    socket.addEventListener("frame", (event) => this.frame(event.detail));
  }

  pending() {
    return this.outbox.all();
  }

  send(item) {
    this.outbox.add({ ...item, failed: null });
    this.transmit(item);
  }

  retry(messageId) {
    const item = this.outbox.get(messageId);
    if (!item) return;
    this.outbox.add({ ...item, failed: null });
    this.transmit(item);
  }

  discard(messageId) {
    this.outbox.remove(messageId);
  }

  transmit(item) {
    const frame = { type: "message.send", message_id: item.message_id, body: item.body };
    if (item.attachments && item.attachments.length) frame.attachments = attachmentIds(item);
    if (this.agent) frame.customer_id = item.customer_id;
    if (this.socket.send(frame)) return;
    this.sendOverHttp(item);
  }

  async sendOverHttp(item) {
    if (this.httpInFlight.has(item.message_id)) return;
    this.httpInFlight.add(item.message_id);
    try {
      const body = { message_id: item.message_id, body: item.body };
      if (item.attachments && item.attachments.length) body.attachments = attachmentIds(item);
      const data = await api("POST", this.sendPath(item), body);
      this.confirmed(item.message_id, data.message);
    } catch (err) {
      if (err.code === "rate_limited") this.later(item.message_id, err.retryAfter);
      else if (err.status >= 400 && err.status < 500 && err.code !== "csrf_failed") this.failed(item.message_id, err.message, err.code);
      // Otherwise (offline, server restarting): it stays in the outbox and
      // goes again when the socket is back.
    } finally {
      this.httpInFlight.delete(item.message_id);
    }
  }

  // The server has this message (we saw it in a page or a frame).
  known(messageId) {
    if (this.outbox.get(messageId)) this.confirmed(messageId, null);
  }

  // Sent faster than the server's budget allows: it stays pending and goes
  // again when the server said it may; the page says so meanwhile ("waiting").
  later(messageId, seconds) {
    const wait = Math.max(1, seconds || 5);
    if (this.waiting.has(messageId)) return; // already waiting (the socket and HTTP both answered)
    this.waiting.add(messageId);
    this.dispatchEvent(new CustomEvent("waiting", { detail: { message_id: messageId, seconds: wait } }));
    setTimeout(() => {
      this.waiting.delete(messageId);
      const item = this.outbox.get(messageId);
      if (item && !item.failed) this.transmit(item);
    }, wait * 1000);
  }

  confirmed(messageId, message) {
    this.outbox.remove(messageId);
    this.dispatchEvent(new CustomEvent("sent", { detail: { message_id: messageId, message } }));
  }

  failed(messageId, detail, code) {
    const item = this.outbox.get(messageId);
    if (!item) return;
    this.outbox.add({ ...item, failed: detail || code });
    this.dispatchEvent(new CustomEvent("failed", { detail: { message_id: messageId, detail: detail || code } }));
  }

  read(messageId) {
    if (this.readDone.has(messageId) || this.reads.get(messageId) === "sent") return;
    this.reads.set(messageId, "pending");
    if (this.socket.send({ type: "message.read", message_id: messageId })) this.reads.set(messageId, "sent");
  }

  readConfirmed(messageId) {
    this.reads.delete(messageId);
    this.readDone.add(messageId);
  }

  flush() {
    for (const item of this.outbox.all()) if (!item.failed && !this.waiting.has(item.message_id)) this.transmit(item);
    for (const [id] of this.reads) {
      this.reads.set(id, "pending");
      if (this.socket.send({ type: "message.read", message_id: id })) this.reads.set(id, "sent");
    }
  }

  frame(frame) {
    if (frame.type === "ack") {
      if (this.outbox.get(frame.ref)) this.confirmed(frame.ref, null);
      if (this.reads.has(frame.ref)) this.readConfirmed(frame.ref);
    } else if (frame.type === "message.read") {
      this.readConfirmed(frame.message_id);
    } else if (frame.type === "message.sent") {
      this.known(frame.message.message_id);
    } else if (frame.type === "error") {
      if (frame.ref && this.outbox.get(frame.ref) && frame.code === "rate_limited") {
        this.later(frame.ref, frame.retry_after);
      } else if (frame.ref && this.outbox.get(frame.ref) && PERMANENT.has(frame.code)) {
        this.failed(frame.ref, frame.detail, frame.code);
      } else if (frame.ref && this.reads.has(frame.ref)) {
        this.readConfirmed(frame.ref); // not ours to read, or gone: do not ask again
      } else if (!frame.ref || !this.outbox.get(frame.ref)) {
        this.dispatchEvent(new CustomEvent("problem", { detail: { code: frame.code, detail: frame.detail } }));
      }
    }
  }
}

// A send names the uploads; the pending item keeps their names and sizes to show meanwhile.
function attachmentIds(item) {
  return item.attachments.map((attachment) => attachment.attachment_id);
}
