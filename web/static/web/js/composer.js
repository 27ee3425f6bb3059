// The message box: Enter sends, Shift+Enter starts a new line, Up on an
// empty box edits your last message, Escape cancels an edit. It grows with
// its text and reports typing (throttled) so the other side sees it. Files
// in its attachment tray (attachments.js) go with the next send; a message
// may then have no text.

const MAX_CHARS = 4000;
const TYPING_EVERY = 2000;

export class Composer {
  constructor({ form, input, button, counter, editBanner, attachments, onSend, onEdit, onTyping, onEditLast, onEditing, intercept }) {
    this.form = form;
    this.input = input;
    this.button = button;
    this.counter = counter;
    this.editBanner = editBanner;
    this.attachments = attachments || null;
    this.onSend = onSend; // (body, attachments) => void

    this.onEdit = onEdit;
    this.onTyping = onTyping || (() => {});
    this.onEditLast = onEditLast || (() => null);
    // Told the message being edited when an edit starts, and null when it ends.
    this.onEditing = onEditing || (() => {});
    // Asked first about every key (a list open under the box: saved replies); true: it was theirs.
    this.intercept = intercept || (() => false);
    this.editing = null;
    this.lastTyping = 0;
    this.typingTimer = null;
    this.savedDraft = "";

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => this.keydown(event));
    input.addEventListener("input", () => {
      this.resize();
      this.updateCounter();
      this.typed();
    });
    const cancel = editBanner.querySelector("button");
    if (cancel) cancel.addEventListener("click", () => this.cancelEdit());
    if (this.attachments) this.attachments.addEventListener("change", () => this.updateCounter());
    this.updateCounter();
  }

  // Tell the other side, at most every TYPING_EVERY ms; keystrokes inside
  // that interval are folded into one trailing notice (the server drops
  // typing frames that come faster than one a second).
  typed() {
    if (!this.input.value.trim() || this.editing || this.typingTimer) return;
    const wait = this.lastTyping + TYPING_EVERY - Date.now();
    const fire = () => {
      this.typingTimer = null;
      if (!this.input.value.trim() || this.editing) return;
      this.lastTyping = Date.now();
      this.onTyping();
    };
    if (wait <= 0) fire();
    else this.typingTimer = setTimeout(fire, wait);
  }

  keydown(event) {
    if (event.isComposing || event.keyCode === 229) return; // an IME is composing a character
    if (this.intercept(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "Escape" && this.editing) {
      event.preventDefault();
      this.cancelEdit();
    } else if (event.key === "ArrowUp" && !this.input.value && !this.editing) {
      const last = this.onEditLast();
      if (last) {
        event.preventDefault();
        this.startEdit(last);
      }
    }
  }

  submit() {
    const body = this.input.value;
    const trimmed = body.trim();
    const tray = this.activeTray();
    const files = tray ? tray.ready : [];
    if (tray && tray.busy) return; // wait for the uploads
    if (!trimmed && !files.length) return;
    if (trimmed.length > MAX_CHARS) {
      this.updateCounter();
      return;
    }
    if (this.editing) {
      const id = this.editing.message_id;
      const changed = trimmed !== this.editing.body;
      this.finishEdit();
      if (changed) this.onEdit(id, trimmed);
    } else {
      this.input.value = "";
      if (files.length) tray.clear();
      this.onSend(trimmed, files);
    }
    this.resize();
    this.updateCounter();
    this.input.focus();
  }

  // The tray whose files the next send takes: none while editing, or while it is switched off (notes).
  activeTray() {
    return this.editing || !this.attachments || !this.attachments.enabled ? null : this.attachments;
  }

  startEdit(msg) {
    this.savedDraft = this.input.value;
    this.editing = msg;
    this.form.classList.add("composer--editing");
    this.editBanner.hidden = false;
    this.button.textContent = "Save";
    this.input.value = msg.body;
    this.input.setAttribute("aria-label", "Edit your message");
    this.onEditing(msg);
    this.resize();
    this.updateCounter();
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  cancelEdit() {
    this.finishEdit();
    this.input.focus();
  }

  finishEdit() {
    this.editing = null;
    this.onEditing(null);
    this.form.classList.remove("composer--editing");
    this.editBanner.hidden = true;
    this.button.textContent = "Send";
    this.input.removeAttribute("aria-label");
    this.input.value = this.savedDraft;
    this.savedDraft = "";
    this.resize();
  }

  get draft() {
    return this.editing ? this.savedDraft : this.input.value;
  }

  set draft(value) {
    if (this.editing) this.finishEdit();
    this.input.value = value || "";
    this.resize();
    this.updateCounter();
  }

  // As tall as its text, up to the stylesheet's max-height (lower on short screens).
  resize() {
    const max = parseFloat(getComputedStyle(this.input).maxHeight) || 200;
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, max)}px`;
  }

  updateCounter() {
    const length = this.input.value.trim().length;
    const over = length > MAX_CHARS;
    const tray = this.activeTray();
    const files = tray ? tray.ready.length : 0;
    this.button.disabled = (length === 0 && files === 0) || over || Boolean(tray && tray.busy) || this.input.disabled;
    if (!this.counter) return;
    if (length > MAX_CHARS - 400) {
      this.counter.hidden = false;
      this.counter.textContent = over
        ? `${length - MAX_CHARS} characters too long`
        : `${MAX_CHARS - length} characters left`;
      this.counter.classList.toggle("counter--over", over);
    } else {
      this.counter.hidden = true;
    }
  }

  setEnabled(enabled) {
    this.input.disabled = !enabled;
    if (this.attachments) this.attachments.setEnabled(enabled);
    if (!enabled) this.button.disabled = true;
    else this.updateCounter();
  }
}
