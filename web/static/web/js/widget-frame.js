// The website widget's frame: Parley's chat inside a host site's page
// (docs/widget.md). The host page's script (web/static/web/embed/widget.js)
// frames this page and talks to it with postMessage; this frame holds who
// the customer is, the one websocket, and the chat (customer.js).
//
// Identity never comes from a cookie (a browser that blocks third-party
// cookies would drop it): it is the customer token the host page hands over
// in its "boot" or "identify" message (the host's server asked Parley for
// it), else a visitor's token from the pre-chat form, kept in this frame's
// own storage (partitioned by the host site; absent where the browser
// blocks it: then in memory only). A host's token is never stored: the host
// hands it again on every load, so a page that signed its user out shows
// no one's conversation.
//
// Messages both ways are {parley: "widget", v: 1, type, ...}. This frame
// accepts them only from its parent window and only from an origin of the
// server's PARLEY_WIDGET_ORIGINS (which the frame-ancestors policy already
// enforces), and answers only that origin. Anything else is ignored.

import { api, blobUrl, useBearer } from "./api.js";
import { customerChat } from "./customer.js";
import { $, h, readConfig } from "./dom.js";

const config = readConfig(); // {origins, socketPath, signup}
const VERSION = 1;
const TOKEN_MAX = 4096;
const VISITOR_KEY = "parley.widget.visitor";
const SETTINGS_EVERY = 60_000;

const app = $("#app");
const VIEWS = ["loading", "signup", "ended", "erased", "closed", "standalone", "chat"];

let hostOrigin = null;
let booted = false;
let open = false;
let readySent = false;
let chat = null;
let current = null; // {token, from: "host" | "visitor", customerId}
let settings = null;
let settingsAt = 0;

function show(view) {
  app.dataset.view = view;
  for (const name of VIEWS) $(`#w-${name}`).hidden = name !== view;
}

// -- the host page --------------------------------------------------------------

function post(type, fields = {}) {
  if (hostOrigin) window.parent.postMessage({ parley: "widget", v: VERSION, type, ...fields }, hostOrigin);
}

const isToken = (t) => typeof t === "string" && t.length > 0 && t.length <= TOKEN_MAX;
const optional = (value, check) => value === undefined || value === null || check(value);

// The message, if it is one of ours from the host page in a shape we know; else null.
function accepted(event) {
  if (window.parent === window || event.source !== window.parent) return null;
  if (!config.origins.includes(event.origin) || (hostOrigin && event.origin !== hostOrigin)) return null;
  const data = event.data;
  if (!data || typeof data !== "object" || Array.isArray(data) || data.parley !== "widget" || data.v !== VERSION) return null;
  switch (data.type) {
    case "boot":
      return optional(data.token, isToken) && optional(data.locale, (l) => typeof l === "string" && l.length <= 35) &&
        typeof data.open === "boolean" && typeof data.forget === "boolean" ? data : null;
    case "identify":
      return isToken(data.token) ? data : null;
    case "open":
    case "close":
    case "logout":
      return data;
    default:
      return null;
  }
}

window.addEventListener("message", (event) => {
  const data = accepted(event);
  if (!data) return;
  hostOrigin = event.origin;
  if (data.type === "boot") boot(data);
  else if (!booted) return;
  else if (data.type === "identify") identify(data.token);
  else if (data.type === "logout") logout();
  else setOpen(data.type === "open");
});

function ready() {
  if (readySent) return;
  readySent = true;
  post("ready", { settings, customer: current ? current.from : null });
  post("unread", { count: chat ? chat.unread : 0 });
}

// -- storage (this frame's, partitioned by the host site) --------------------------

const storage = {
  get() {
    try {
      return localStorage.getItem(VISITOR_KEY);
    } catch {
      return null;
    }
  },
  set(token) {
    try {
      localStorage.setItem(VISITOR_KEY, token);
      return true;
    } catch {
      return false; // blocked (third-party storage off): this page's memory only
    }
  },
  // A customer this browser stops speaking for: the visitor's token, if it
  // was theirs, and their unsent messages (never to be sent now).
  forget(who) {
    try {
      if (who.from === "visitor") localStorage.removeItem(VISITOR_KEY);
      localStorage.removeItem(`parley.outbox.customer.${who.customerId}`);
    } catch {
      /* nothing was kept */
    }
  },
  // Everything Parley keeps here: the visitor's token, unsent messages.
  clear() {
    try {
      for (const key of Object.keys(localStorage)) if (key.startsWith("parley.")) localStorage.removeItem(key);
    } catch {
      /* nothing was kept */
    }
  },
};

// -- boot, identity ----------------------------------------------------------------

function boot(data) {
  if (booted) {
    setOpen(data.open); // the host said it again (a retry): only the open state can be news
    return;
  }
  booted = true;
  if (data.forget) {
    // The host logged out before this frame was loaded: a visitor's token
    // kept here can still sign out the windows it opened.
    const saved = storage.get();
    storage.clear();
    if (saved) signOutWindows(saved);
  }
  if (data.locale) setLocale(data.locale);
  loadSettings();
  setOpen(data.open);
  if (data.token) begin(data.token, "host");
  else {
    const saved = storage.get();
    if (saved) begin(saved, "visitor");
    else signup();
  }
}

function setLocale(locale) {
  try {
    document.documentElement.lang = Intl.getCanonicalLocales(locale)[0];
  } catch {
    /* not a language tag: keep English */
  }
}

// Who a token speaks for (asked with that token alone: whatever the chat is
// sending meanwhile still goes as the customer it was written by).
function whoIs(token) {
  return api("GET", "/api/v1/widget/me", undefined, { token });
}

async function begin(token, from) {
  show("loading");
  let me;
  try {
    me = await whoIs(token);
  } catch (err) {
    if (err.status === 0 || err.status >= 500) {
      setTimeout(() => begin(token, from), 3000); // the server is away: the token may well be fine
      return;
    }
    if (from === "visitor") {
      storage.clear(); // an old visitor's token that no longer works: start afresh
      signup();
    } else {
      ended(err.code || "invalid_token", err.message);
    }
    return;
  }
  current = { token, from, customerId: me.customer_id };
  useBearer(token);
  // Signed in by the host: a visitor's token kept from before stays unused
  // from now on, so a page that later boots without one (its user signed
  // out) cannot bring that conversation back.
  if (from === "host") {
    try {
      localStorage.removeItem(VISITOR_KEY);
    } catch {
      /* nothing was kept */
    }
  }
  $("#w-me-name").textContent = me.name;
  $("#w-me-email").textContent = me.email;
  $("#w-storage-note").hidden = from !== "visitor" || storage.get() === token;
  chat = customerChat({
    config: { customerId: me.customer_id, customerName: me.name, socketPath: config.socketPath },
    token,
    mayRead: () => open,
    onBadge: (count) => post("unread", { count }),
    onMessage: (message) => post("message", { message: forHost(message) }),
    onEnded: () => ended("invalid_token", "the customer token is no longer accepted"),
    onErased: erased,
    files,
    autofocus: false,
  });
  // For people debugging a deployment, and for the browser tests: from the
  // moment the chat can be used (it is shown, and can send, before start()
  // has loaded the conversation), as on the full page.
  window.parley = { socket: chat.socket, thread: chat.thread, messenger: chat.messenger, composer: chat.composer };
  show("chat");
  await chat.start();
  if (open) shown();
  ready();
}

// What the host page learns of a message: who wrote what, when. Not the
// files' addresses, which need this frame's token to open.
function forHost(msg) {
  return {
    message_id: msg.message_id,
    sender: { kind: msg.sender.kind, name: msg.sender.name || "" },
    body: msg.body,
    sent_at: msg.sent_at,
    attachments: (msg.attachments || []).map((a) => ({ name: a.name, content_type: a.content_type, size: a.size })),
  };
}

async function identify(token) {
  if (current && current.token === token) return;
  let me = null;
  try {
    me = await whoIs(token);
  } catch {
    me = null;
  }
  if (current && me && me.customer_id === current.customerId) {
    // The same customer with a renewed token: use it from now on.
    current.token = token;
    useBearer(token);
    if (chat) chat.socket.token = token;
    return;
  }
  // Someone else (or a token to check afresh): start over as them. The host
  // hands the token again when this frame loads; the one leaving is forgotten here.
  if (current) storage.forget(current);
  location.reload();
}

// Milliseconds the logout waits for the server before it forgets the customer here anyway.
const SIGN_OUT_WITHIN = 5000;

async function logout() {
  const leaving = current;
  storage.clear();
  useBearer(null);
  post("unread", { count: 0 });
  if (leaving) await signOutWindows(leaving.token);
  location.reload(); // the host's next boot carries no token: the pre-chat form
}

// The windows "Open in a new window" and "Get notifications" signed in hold
// a cookie of Parley's own, which this frame (another site's) cannot clear:
// the server signs them out. Whatever it answers, this browser forgets the
// customer here.
async function signOutWindows(token) {
  const call = api("POST", "/api/v1/widget/logout", undefined, { token }).catch(() => {});
  await Promise.race([call, new Promise((resolve) => setTimeout(resolve, SIGN_OUT_WITHIN))]);
}

function ended(code, detail) {
  if (chat) chat.socket.stop();
  show("ended");
  post("error", { code, detail: detail || "" });
  post("unread", { count: 0 });
  ready();
}

// The customer was erased (docs/privacy.md): the chat has dropped their
// conversation and its socket has stopped for good. This browser forgets
// them too (a visitor's token, unsent messages), so the next load starts
// afresh, and the host page hears of it.
function erased() {
  if (current) storage.forget(current);
  current = null;
  useBearer(null);
  show("erased");
  post("error", { code: "erased", detail: "the customer was erased" });
  post("unread", { count: 0 });
  ready();
}

// -- the pre-chat form ----------------------------------------------------------------

function signup() {
  if (!config.signup || (settings && settings.visitor_signup === false)) {
    show("closed");
    ready();
    return;
  }
  show("signup");
  ready();
  if (open) $("#w-name").focus();
}

const SIGNUP_ERRORS = {
  invalid_name: ["#w-name", "#w-name-error", "Please give your name."],
  invalid_email: ["#w-email", "#w-email-error", "Please give an email address we can answer at."],
};

$("#w-signup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("#w-start");
  const problem = $("#w-signup-problem");
  for (const [input, error] of Object.values(SIGNUP_ERRORS)) {
    $(error).hidden = true;
    $(input).removeAttribute("aria-invalid");
  }
  problem.hidden = true;
  button.disabled = true;
  try {
    const body = { name: $("#w-name").value, email: $("#w-email").value };
    const { token } = await api("POST", "/api/v1/widget/visitors", body);
    storage.set(token);
    await begin(token, "visitor");
    $("#composer-input").focus();
  } catch (err) {
    const field = SIGNUP_ERRORS[err.code];
    if (field) {
      const [input, error, text] = field;
      $(error).textContent = text;
      $(error).hidden = false;
      $(input).setAttribute("aria-invalid", "true");
      $(input).focus();
    } else if (err.code === "visitor_signup_disabled") {
      show("closed");
    } else {
      problem.textContent = err.code === "rate_limited"
        ? "Too many new conversations from your network just now. Please try again in a little while."
        : err.status === 0 ? "No connection to the server. Please try again." : err.message;
      problem.hidden = false;
    }
  } finally {
    button.disabled = false;
  }
});

// -- open and closed ------------------------------------------------------------------

function setOpen(value) {
  if (value === open) return;
  open = value;
  document.body.dataset.open = String(open);
  if (!open) return;
  if (Date.now() - settingsAt > SETTINGS_EVERY) loadSettings();
  shown();
}

// The widget is on screen: put the focus where the person would start, and
// let what is visible count as read.
function shown() {
  const view = app.dataset.view;
  if (view === "chat" && chat) {
    requestAnimationFrame(() => {
      chat.thread.scrollToFirstUnread();
      chat.readVisible();
    });
    $("#composer-input").focus({ preventScroll: true });
  } else if (view === "signup") {
    $("#w-name").focus();
  } else if (view === "ended") {
    $("#w-retry").focus();
  } else {
    $("#w-close").focus();
  }
}

$("#w-close").addEventListener("click", () => post("close"));

// Escape closes an open menu first, then the widget (an edit in the message
// box takes its Escape itself).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  const menu = event.target instanceof Element ? event.target.closest("details[open]") : null;
  const anyMenu = menu || document.querySelector("details[open]");
  if (anyMenu) {
    anyMenu.open = false;
    anyMenu.querySelector("summary").focus();
  } else {
    post("close");
  }
});

$("#w-retry").addEventListener("click", () => location.reload());

// -- settings: name, greeting, colour, who is online ---------------------------------

async function loadSettings() {
  settingsAt = Date.now();
  try {
    settings = await api("GET", "/api/v1/widget");
  } catch {
    return; // the defaults stay; the next opening asks again
  }
  $("#w-title").textContent = settings.name;
  $("#w-greeting").textContent = settings.greeting || "Hi! How can we help?";
  $("#w-signup-greeting").textContent = settings.greeting || "";
  $("#w-presence").dataset.online = String(settings.online);
  const hours = settings.business_hours;
  $("#w-availability").textContent =
    hours && !hours.open
      ? `We're away, we reply by ${hours.next_opening_text || "the next working day"}.`
      : settings.online
        ? settings.reply_time || "We're online"
        : `Away now. ${settings.reply_time || "We'll answer here as soon as we can."}`;
  paint(settings.color);
  if (readySent) post("settings", { settings });
}

// The accent colour, with text on it dark or light, whichever reads better.
function paint(color) {
  if (!/^#[0-9a-f]{6}$/.test(color)) return;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16) / 255);
  const lin = (c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const light = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b) > 0.4;
  const root = document.documentElement.style;
  for (const name of ["--accent", "--mine", "--accent-strong"]) root.setProperty(name, color);
  root.setProperty("--on-accent", light ? "#111" : "#fff");
  root.setProperty("--on-mine", light ? "#111" : "#fff");
}

// -- files: fetched with the token, shown from memory ------------------------------------

const blobs = new Map(); // url -> Promise<blob: URL>

function loadBlob(url) {
  if (!blobs.has(url)) {
    const loading = blobUrl(url);
    loading.catch(() => blobs.delete(url));
    blobs.set(url, loading);
  }
  return blobs.get(url);
}

const files = {
  image(img, url) {
    loadBlob(url).then((src) => { img.src = src; }, () => { img.alt = `${img.alt} (could not be loaded)`; });
  },
  open(event, url, name) {
    event.preventDefault();
    loadBlob(url).then((src) => {
      const link = h("a", { href: src, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    }, () => {});
  },
};

// -- out to Parley's own page (notifications, installing, a conversation kept) ----------

// The browser asks for notification permission only in a page of Parley's
// own, never in a frame of another site. The token goes there in a POST
// body to /widget/open/ (never a URL), which signs the new window in and
// shows the chat page.
function popOut(where) {
  if (!current) return;
  $("#w-open-token").value = current.token;
  $("#w-open").action = where === "notifications" ? "/widget/open/?next=notifications" : "/widget/open/";
  $("#w-open").submit();
  $("#w-open-token").value = "";
}

$("#w-notify").addEventListener("click", () => popOut("notifications"));
$("#w-popout").addEventListener("click", () => popOut("chat"));
$("#w-storage-popout").addEventListener("click", () => popOut("chat"));
$("#w-notify").hidden = !("PushManager" in window && "serviceWorker" in navigator);
$("#w-leave").addEventListener("click", () => {
  // The same as the host's Parley("logout"): this browser forgets the customer here.
  post("logout");
  logout();
});

// -- start --------------------------------------------------------------------------------

if (window.parent === window) {
  show("standalone"); // opened on its own: nothing will boot it
} else {
  show("loading");
}
