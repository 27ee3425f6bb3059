// The satisfaction prompt of a resolved conversation, on both customer
// surfaces (the chat page and the widget's frame): a 1–5 score and an
// optional comment. The server says when to ask (GET /api/v1/rating and the
// `conversation.rating` frames); a new rating replaces the last one of the
// same resolved period.

import { api } from "./api.js";
import { $ } from "./dom.js";

export class RatingPrompt {
  constructor(root = $("#rating")) {
    this.root = root;
    this.form = $("#rating-form", root);
    this.comment = $("#rating-comment", root);
    this.status = $("#rating-status", root);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
  }

  // {asked, rating}: the answer of GET /api/v1/rating, or a `conversation.rating` frame.
  show({ asked, rating }) {
    this.root.hidden = !asked;
    if (!asked) return;
    for (const input of this.form.elements.score) input.checked = Boolean(rating) && Number(input.value) === rating.score;
    if (rating) {
      this.comment.value = rating.comment;
      this.status.textContent = `Thank you: you rated us ${rating.score} of 5. You can change it.`;
    } else {
      this.status.textContent = "";
    }
  }

  async load() {
    try {
      this.show(await api("GET", "/api/v1/rating"));
    } catch {
      /* the prompt is a nicety: the chat works without it */
    }
  }

  async send() {
    const score = Number(new FormData(this.form).get("score"));
    if (!score) {
      this.status.textContent = "Choose a score from 1 to 5.";
      return;
    }
    try {
      this.show(await api("POST", "/api/v1/rating", { score, comment: this.comment.value }));
    } catch (err) {
      this.status.textContent = err.message;
    }
  }
}
