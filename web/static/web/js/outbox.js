// Messages typed but not yet confirmed by the server, kept in localStorage
// so that a reload, a crash or a lost connection does not lose them. Each
// keeps the id it was given when typed: resending it after a reconnect can
// never create a second message (the server answers "already sent").

export class Outbox {
  constructor(key) {
    this.key = key;
    this.memory = [];
  }

  all() {
    try {
      const raw = localStorage.getItem(this.key);
      return raw ? JSON.parse(raw) : [];
    } catch {
      return this.memory; // storage unavailable (private mode): this page only
    }
  }

  save(items) {
    this.memory = items;
    try {
      if (items.length) localStorage.setItem(this.key, JSON.stringify(items));
      else localStorage.removeItem(this.key);
    } catch {
      /* keep the in-memory copy */
    }
  }

  add(item) {
    const items = this.all().filter((x) => x.message_id !== item.message_id);
    items.push(item);
    this.save(items);
  }

  // Drop every kept message (the customer was erased: nothing of theirs stays here).
  clear() {
    this.save([]);
  }

  remove(messageId) {
    const items = this.all();
    const kept = items.filter((x) => x.message_id !== messageId);
    if (kept.length !== items.length) this.save(kept);
  }

  get(messageId) {
    return this.all().find((x) => x.message_id === messageId) || null;
  }
}
