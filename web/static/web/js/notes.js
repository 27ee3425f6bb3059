// Private notes on the dashboard: the composer's "Reply | Note" switch and
// the notes this page is still saving.
//
// A note gets its id (a UUID) when it is written and keeps it through every
// retry, so saving it twice can only ever store it once (the API answers
// 200 with the same note). Notes go to agents only; the composer never sends
// typing notices while it writes one.

import { api } from "./api.js";
import { uuid4 } from "./dom.js";

export class ComposerMode {
  constructor({ form, input, send, label, replyButton, noteButton, noteLabel, onChange }) {
    this.form = form;
    this.input = input;
    this.send = send;
    this.label = label;
    this.replyButton = replyButton;
    this.noteButton = noteButton;
    this.noteLabel = noteLabel;
    this.onChange = onChange || (() => {});
    this.mode = "reply";
    this.name = "the customer";
    replyButton.addEventListener("click", () => this.set("reply", true));
    noteButton.addEventListener("click", () => this.set("note", true));
  }

  get note() {
    return this.mode === "note";
  }

  // The customer's name, for the reply box's label.
  setName(name) {
    this.name = name;
    this.draw();
  }

  set(mode, focus = false) {
    this.mode = mode === "note" ? "note" : "reply";
    this.draw();
    this.onChange(this.mode);
    if (focus) this.input.focus();
  }

  draw() {
    const note = this.note;
    this.form.classList.toggle("composer--note", note);
    this.form.dataset.mode = this.mode;
    this.replyButton.setAttribute("aria-pressed", String(!note));
    this.noteButton.setAttribute("aria-pressed", String(note));
    this.noteLabel.hidden = !note;
    this.send.textContent = note ? "Add note" : "Send";
    // Short enough for one line on a phone; the label (for screen readers) names the customer.
    this.input.placeholder = note ? "Private note for your team…" : "Write a reply…";
    this.label.textContent = note ? "Private note (only agents see notes)" : `Reply to ${this.name}`;
  }
}

export class NoteSender extends EventTarget {
  // Events: "saved" {note}, "failed" {note_id, detail}.
  constructor() {
    super();
    this.pending = new Map(); // note_id -> {note_id, customer_id, body, created_at, failed}
  }

  has(id) {
    return this.pending.has(id);
  }

  pendingFor(customerId) {
    return [...this.pending.values()].filter((n) => n.customer_id === customerId);
  }

  send(customerId, body) {
    const note = { note_id: uuid4(), customer_id: customerId, body, created_at: new Date().toISOString(), failed: null };
    this.pending.set(note.note_id, note);
    this.save(note);
    return note;
  }

  retry(id) {
    const note = this.pending.get(id);
    if (!note) return;
    note.failed = null;
    this.save(note);
  }

  discard(id) {
    this.pending.delete(id);
  }

  async save(note) {
    try {
      const data = await api("POST", `/api/v1/conversations/${note.customer_id}/notes`, { note_id: note.note_id, body: note.body });
      this.pending.delete(note.note_id);
      this.dispatchEvent(new CustomEvent("saved", { detail: { note: data.note } }));
    } catch (err) {
      note.failed = err.status === 0 ? "Not saved: no connection" : `Not saved: ${err.message}`;
      this.dispatchEvent(new CustomEvent("failed", { detail: { note_id: note.note_id, detail: note.failed } }));
    }
  }
}
