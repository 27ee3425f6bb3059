// Files attached to the message being written: chosen with the button,
// pasted, or dropped on the composer. Each is uploaded at once (multipart,
// POST /api/v1/attachments, with the page's cookie or the widget's token); the server reads its type from the bytes and
// answers with its id, which the send then names. Shown as chips with the
// name, size and state; nothing of a file's name is ever parsed as HTML.
//
// Events: "change" (the list or a state changed).

import { ApiError, authorize } from "./api.js";
import { h } from "./dom.js";

export const MAX_ATTACHMENTS = 10;

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted");
  let response;
  try {
    response = await fetch("/api/v1/attachments", { method: "POST", body: form, ...authorize("POST", { Accept: "application/json" }) });
  } catch {
    throw new ApiError(0, "network_error", "No connection to the server");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_error", error.detail || `HTTP ${response.status}`);
  }
  return data;
}

const REFUSALS = {
  attachment_type_not_allowed: "Only images (PNG, JPEG, GIF, WebP), PDF and text files can be sent",
  attachment_too_large: "The file is too large",
  image_too_large: "The image is too large",
};

export class AttachmentTray extends EventTarget {
  constructor({ tray, input, button, dropTarget }) {
    super();
    this.tray = tray;
    this.items = []; // {key, file, name, size, state: "uploading"|"ready"|"failed", attachment?, error?}
    this.enabled = true;
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = "";
    });
    dropTarget.addEventListener("paste", (event) => {
      const pasted = [...(event.clipboardData ? event.clipboardData.files : [])];
      if (pasted.length && this.enabled) {
        event.preventDefault();
        this.add(pasted);
      }
    });
    dropTarget.addEventListener("dragover", (event) => {
      if (!this.enabled || !event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      dropTarget.classList.add("composer--drop");
    });
    dropTarget.addEventListener("dragleave", () => dropTarget.classList.remove("composer--drop"));
    dropTarget.addEventListener("drop", (event) => {
      dropTarget.classList.remove("composer--drop");
      if (!this.enabled || !event.dataTransfer || !event.dataTransfer.files.length) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
    });
  }

  add(files) {
    for (const file of files) {
      if (this.items.length >= MAX_ATTACHMENTS) break;
      const item = { key: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()), file, name: file.name || "pasted",
        size: file.size, state: "uploading" };
      this.items.push(item);
      upload(file).then(
        (attachment) => {
          item.state = "ready";
          item.attachment = attachment;
          this.changed();
        },
        (err) => {
          item.state = "failed";
          item.error = REFUSALS[err.code] || err.message;
          this.changed();
        },
      );
    }
    this.changed();
  }

  remove(key) {
    this.items = this.items.filter((item) => item.key !== key);
    this.changed();
  }

  // The uploaded attachments ({attachment_id, name, content_type, size}), in order.
  get ready() {
    return this.items.filter((item) => item.state === "ready").map((item) => item.attachment);
  }

  get busy() {
    return this.items.some((item) => item.state === "uploading");
  }

  clear() {
    this.items = [];
    this.changed();
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    this.tray.hidden = !enabled || this.items.length === 0;
  }

  changed() {
    this.render();
    this.dispatchEvent(new Event("change"));
  }

  render() {
    this.tray.hidden = this.items.length === 0 || !this.enabled;
    this.tray.replaceChildren(
      ...this.items.map((item) =>
        h(
          "li",
          { class: "attachment-chip", dataset: { state: item.state } },
          h("span", { class: "attachment-chip__name" }, item.name),
          h("span", { class: "attachment-chip__meta" },
            item.state === "uploading" ? "Uploading…" : item.state === "failed" ? item.error : formatSize(item.size)),
          h("button", { type: "button", class: "link-button", "aria-label": `Remove ${item.name}`,
            onclick: () => this.remove(item.key) }, "Remove"),
        ),
      ),
    );
  }
}
