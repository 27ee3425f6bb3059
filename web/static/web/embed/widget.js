/*! Parley website widget (docs/widget.md). One classic script, no build step:
 *   <script src="https://<parley>/widget.js" async></script>
 * It adds a launcher ("Open support chat", with the exact unread count) in a
 * shadow root, and the chat in an iframe of Parley's /widget/frame/. The host
 * page gets window.Parley and nothing else: no global CSS, no other global.
 *
 *   Parley("boot", {token?, locale?})   Parley("open")   Parley("close")
 *   Parley("identify", {token})         Parley("logout") Parley("shutdown")
 *   Parley("on", "unread" | "ready" | "message" | "error", fn)   Parley("off", name, fn)
 *
 * Calls made before this script loads wait in Parley.q (the snippet's queue).
 * The frame holds the identity and the one websocket; this script only shows
 * what the frame tells it. Messages both ways are {parley: "widget", v: 1,
 * type, ...}: taken only from the frame's window at Parley's origin, sent
 * only to Parley's origin. The token the host hands over goes to the frame
 * and nowhere else. */
(function () {
  "use strict";

  var earlier = window.Parley;
  if (typeof earlier === "function" && earlier.version) {
    console.warn("Parley: widget.js is on this page twice; the second copy does nothing.");
    return;
  }
  var script = document.currentScript;
  var origin;
  try {
    origin = new URL(script.src).origin;
  } catch (err) {
    console.error("Parley: load widget.js with a <script src=\"https://<parley>/widget.js\"> tag.");
    return;
  }

  var VERSION = 1;
  var TOKEN_MAX = 4096;
  var READY_WITHIN = 10000;
  var EVENTS = ["unread", "ready", "message", "error"];
  var handlers = { unread: [], ready: [], message: [], error: [] };
  var state = { booted: false, token: null, locale: null, open: false, forget: false, unread: 0, ready: false };
  var ui = null; // {host, launcher, count, said, panel, frame, loaded, readyTimer}

  var CSS = [
    ":host{all:initial}",
    "*,*::before,*::after{box-sizing:border-box}",
    "[hidden]{display:none!important}",
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;margin:0;padding:0;",
    "border:0;border-radius:50%;background:var(--accent,#0f766e);color:var(--on-accent,#fff);cursor:pointer;",
    "display:grid;place-items:center;box-shadow:0 4px 16px rgba(16,24,40,.25);font:600 14px/1 system-ui,-apple-system,",
    "'Segoe UI',Roboto,Arial,sans-serif;transition:transform .15s ease}",
    ".launcher:hover{transform:scale(1.05)}",
    ".launcher:focus-visible{outline:3px solid #1d4ed8;outline-offset:3px}",
    ".launcher svg{width:28px;height:28px;fill:currentColor}",
    ".launcher[aria-expanded=true] .chat,.launcher[aria-expanded=false] .down{display:none}",
    ".count{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;",
    "background:#dc2626;color:#fff;font:700 12px/22px system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;",
    "text-align:center;box-shadow:0 0 0 2px #fff}",
    ".said{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    ".panel{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:380px;height:min(640px,calc(100vh - 108px));",
    "max-width:calc(100vw - 40px);border-radius:16px;overflow:hidden;background:#fff;",
    "box-shadow:0 12px 48px rgba(16,24,40,.28)}",
    ".panel iframe{display:block;width:100%;height:100%;border:0;color-scheme:normal}",
    "@media (max-width:640px){.panel{inset:0;width:100%;max-width:none;height:100%;border-radius:0}",
    ".launcher[aria-expanded=true]{display:none}}",
    "@media (prefers-reduced-motion:reduce){.launcher{transition:none}}",
  ].join("");

  // -- the API ---------------------------------------------------------------------

  function Parley(command) {
    var args = Array.prototype.slice.call(arguments, 1);
    try {
      run(command, args);
    } catch (err) {
      console.error("Parley:", err);
    }
  }
  Parley.version = VERSION;

  function run(command, args) {
    switch (command) {
      case "boot":
        return boot(options(args[0], "boot"));
      case "open":
        return setOpen(true, false);
      case "close":
        return setOpen(false, false);
      case "identify":
        return identify(options(args[0], "identify").token);
      case "logout":
        return logout();
      case "shutdown":
        return shutdown();
      case "on":
      case "off":
        return listen(command, args[0], args[1]);
      default:
        console.warn("Parley: unknown command " + JSON.stringify(String(command)));
    }
  }

  function options(value, command) {
    var given = value === undefined || value === null ? {} : value;
    if (typeof given !== "object") throw new TypeError(command + " takes an object of options");
    var token = given.token === undefined || given.token === null ? null : given.token;
    if (token !== null && (typeof token !== "string" || !token || token.length > TOKEN_MAX)) {
      throw new TypeError(command + ": token must be the customer token your server got from Parley");
    }
    if (command === "identify" && token === null) throw new TypeError("identify needs {token}");
    var locale = typeof given.locale === "string" && given.locale.length <= 35 ? given.locale : null;
    return { token: token, locale: locale };
  }

  function listen(command, name, fn) {
    if (EVENTS.indexOf(name) < 0 || typeof fn !== "function") {
      throw new TypeError(command + " takes one of " + EVENTS.join(", ") + " and a function");
    }
    var list = handlers[name];
    if (command === "off") {
      handlers[name] = list.filter(function (f) { return f !== fn; });
      return;
    }
    list.push(fn);
    // Late listeners hear the present at once.
    if (state.ready && name === "unread") call(fn, [state.unread]);
    if (state.ready && name === "ready") call(fn, []);
  }

  function emit(name, value) {
    var list = handlers[name].slice();
    for (var i = 0; i < list.length; i++) call(list[i], value === undefined ? [] : [value]);
  }

  function call(fn, args) {
    try {
      fn.apply(null, args);
    } catch (err) {
      console.error("Parley: an event handler failed:", err);
    }
  }

  // -- commands ---------------------------------------------------------------------

  function boot(opts) {
    if (opts.locale) state.locale = opts.locale;
    if (state.booted) {
      if (opts.token && opts.token !== state.token) identify(opts.token); // booted again after the host's sign-in
      return;
    }
    state.booted = true;
    if (opts.token) state.token = opts.token;
    if (document.body) build();
    else document.addEventListener("DOMContentLoaded", function () { if (state.booted && !ui) build(); });
  }

  function identify(token) {
    if (!state.booted) {
      state.token = token; // boot hands it over
      return;
    }
    if (token === state.token) return;
    state.token = token;
    send({ type: "identify", token: token });
  }

  function logout() {
    state.token = null;
    setCount(0);
    if (ui && ui.loaded) send({ type: "logout" });
    else state.forget = true; // the frame forgets when it next boots
  }

  function shutdown() {
    if (!state.booted) return;
    if (ui) {
      window.removeEventListener("message", receive);
      clearTimeout(ui.readyTimer);
      ui.host.remove();
    }
    ui = null;
    state.booted = false;
    state.ready = false;
    state.open = false;
    state.token = null;
    state.unread = 0;
  }

  function setOpen(open, fromFrame) {
    state.open = open;
    if (!ui) return;
    var hadFocus = document.activeElement === ui.host;
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", String(open));
    if (open) attachFrame(); // opened before it was added: now
    send({ type: open ? "open" : "close" });
    if (open) ui.frame.focus();
    else if (fromFrame || hadFocus) ui.launcher.focus();
  }

  // -- the launcher and the frame ----------------------------------------------------

  function el(tag, attrs) {
    var node = document.createElement(tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    return node;
  }

  // A speech bubble while closed, a chevron (down: it folds away) while open.
  function icon(name, d) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", name);
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.appendChild(path);
    return svg;
  }

  function styleRoot(root) {
    // A constructed stylesheet: no <style> element, so a host page's strict
    // style-src needs no exception. The element is the fallback for
    // browsers without them (there it needs the host's 'unsafe-inline').
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (err) {
      var style = document.createElement("style");
      style.textContent = CSS;
      root.appendChild(style);
    }
  }

  function build() {
    var host = document.createElement("parley-widget");
    // Nothing of the host's styles reaches in: the shadow root keeps its
    // selectors out, and this resets what would be inherited.
    host.style.setProperty("all", "initial", "important");
    var root = host.attachShadow({ mode: "open" });
    styleRoot(root);
    var launcher = el("button", {
      type: "button", class: "launcher", "aria-label": "Open support chat", "aria-expanded": "false",
      "aria-controls": "parley-panel", "aria-describedby": "parley-said",
    });
    var count = el("span", { class: "count", "aria-hidden": "true" });
    count.hidden = true;
    var said = el("span", { class: "said", id: "parley-said" });
    launcher.appendChild(icon("chat", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 " +
      "6.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z"));
    launcher.appendChild(icon("down", "M5.3 8.3a1 1 0 0 1 1.4 0L12 13.6l5.3-5.3a1 1 0 1 1 1.4 1.4l-6 6a1 1 0 0 1-1.4 0l-6-6a1 1 0 0 1 0-1.4z"));
    launcher.appendChild(count);
    var panel = el("div", { class: "panel", id: "parley-panel", role: "dialog", "aria-label": "Support chat" });
    panel.hidden = true;
    root.appendChild(launcher);
    root.appendChild(said);
    root.appendChild(panel);
    ui = { host: host, root: root, launcher: launcher, count: count, said: said, panel: panel, frame: null,
      loaded: false, readyTimer: null };
    launcher.addEventListener("click", function () { setOpen(!state.open, false); });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && state.open) setOpen(false, true);
    });
    window.addEventListener("message", receive);
    document.body.appendChild(host);
    setCount(state.unread);
    // The launcher is on screen with the next frame; the chat's frame (a
    // page of another site: a process of its own to start) joins right
    // after, so that the launcher never waits for it.
    var view = ui;
    var later = function () { if (ui === view) attachFrame(); };
    // (A background tab paints no frames: there it joins at once, to keep the count live.)
    if (document.visibilityState === "hidden") setTimeout(later);
    else requestAnimationFrame(function () { setTimeout(later); });
    if (state.open) setOpen(true, false);
    ui.readyTimer = setTimeout(function () {
      if (!state.ready) {
        console.error("Parley: the support chat at " + origin + " did not answer this page (" + location.origin +
          "). Check that PARLEY_WIDGET_ORIGINS on the Parley server lists " + location.origin +
          " and that this page's Content-Security-Policy allows frame-src " + origin + ".");
      }
    }, READY_WITHIN);
    check();
  }

  function attachFrame() {
    if (!ui || ui.frame) return;
    var view = ui;
    var frame = el("iframe", { title: "Support chat", src: origin + "/widget/frame/" });
    view.frame = frame;
    // Every load of the frame (the first, and each after it changed who it
    // speaks for) gets the boot: the token lives in this page and the frame.
    frame.addEventListener("load", function () {
      if (ui !== view) return;
      view.loaded = true;
      state.ready = false;
      send({ type: "boot", token: state.token, locale: state.locale, open: state.open, forget: state.forget });
      state.forget = false;
    });
    view.panel.appendChild(frame);
  }

  // Settings and the one configuration mistake this page can see for itself.
  function check() {
    if (typeof fetch !== "function") return;
    fetch(origin + "/api/v1/widget", { credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (settings) {
        if (!settings || !ui) return;
        paint(settings);
        var origins = settings.origins;
        if (Array.isArray(origins) && origins.indexOf(location.origin) < 0) {
          console.error("Parley: this page's origin " + location.origin + " is not in PARLEY_WIDGET_ORIGINS (" +
            (origins.length ? origins.join(" ") : "empty: no site may embed the chat") +
            "), so the chat cannot open here. Add it on the Parley server.");
          ui.host.style.setProperty("display", "none", "important");
        }
      })
      .catch(function () { /* the frame's ready message brings the settings too */ });
  }

  function paint(settings) {
    if (!ui || !settings || typeof settings.color !== "string" || !/^#[0-9a-f]{6}$/.test(settings.color)) return;
    var c = settings.color;
    var lum = [1, 3, 5].map(function (i) {
      var v = parseInt(c.slice(i, i + 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    ui.launcher.style.setProperty("--accent", c);
    ui.launcher.style.setProperty("--on-accent", 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] > 0.4 ? "#111" : "#fff");
  }

  function setCount(n) {
    var changed = n !== state.unread;
    state.unread = n;
    if (ui) {
      ui.count.textContent = n > 99 ? "99+" : String(n);
      ui.count.hidden = n === 0;
      ui.said.textContent = n === 0 ? "" : n === 1 ? "1 unread message" : n + " unread messages";
    }
    if (changed) emit("unread", n);
  }

  // -- messages ---------------------------------------------------------------------------

  function send(message) {
    if (!ui || !ui.loaded || !ui.frame || !ui.frame.contentWindow) return;
    message.parley = "widget";
    message.v = VERSION;
    ui.frame.contentWindow.postMessage(message, origin);
  }

  function receive(event) {
    if (!ui || !ui.frame || event.source !== ui.frame.contentWindow || event.origin !== origin) return;
    var data = event.data;
    if (!data || typeof data !== "object" || data.parley !== "widget" || data.v !== VERSION) return;
    switch (data.type) {
      case "ready":
        paint(data.settings);
        state.ready = true;
        emit("ready");
        break;
      case "settings":
        paint(data.settings);
        break;
      case "unread":
        if (typeof data.count === "number" && data.count >= 0 && data.count % 1 === 0) setCount(data.count);
        break;
      case "message":
        if (data.message && typeof data.message === "object") emit("message", data.message);
        break;
      case "error":
        if (typeof data.code === "string") emit("error", { code: data.code, detail: String(data.detail || "") });
        break;
      case "close":
        setOpen(false, true);
        break;
      case "logout":
        state.token = null; // "Not you? Leave this chat" in the frame: this page forgets the token too
        setCount(0);
        break;
      default:
        break;
    }
  }

  // -- start: the queue of calls made before this script loaded ---------------------------

  window.Parley = Parley;
  var queue = earlier && earlier.q && typeof earlier.q.length === "number" ? Array.prototype.slice.call(earlier.q) : [];
  var bootQueued = false;
  for (var i = 0; i < queue.length; i++) {
    var args = Array.prototype.slice.call(queue[i]);
    if (args[0] === "boot" || args[0] === "shutdown") bootQueued = true;
    Parley.apply(null, args);
  }
  if (!bootQueued) Parley("boot");
})();
