/**
 * Parley Web Push for pages — an ES module, served under /static/ as
 * notifications/push.js (in production under its content-hashed name, which
 * the chat page is given: import it dynamically from that URL). It exports
 * pushSupported, pushStatus, enablePush and disablePush.
 *
 * pushSupported(): boolean
 *     Service workers, the Push API and notifications are all available.
 *     (iOS/iPadOS: only in a web app added to the Home Screen, 16.4+.)
 *
 * async pushStatus(): {supported, permission, subscribed, endpoint}
 *     permission is Notification.permission ("default" | "granted" |
 *     "denied") or "unsupported"; subscribed is true when this browser holds
 *     a push subscription for this site and permission is granted. Local
 *     only: it asks the server nothing.
 *
 * async enablePush(): {subscriptionId, created}
 *     Asks for notification permission (call it from a click: Safari and
 *     Firefox refuse to prompt otherwise), registers /sw.js, fetches the VAPID
 *     public key, subscribes with userVisibleOnly, and POSTs the subscription
 *     to /api/v1/push-subscriptions with the CSRF token from the `csrftoken`
 *     cookie and credentials "same-origin" (the customer's signed cookie).
 *     Idempotent: calling it again sends the same endpoint (200). Call it on
 *     every page load when pushStatus().permission === "granted", so a
 *     subscription the browser renewed meanwhile is registered again.
 *     Throws an Error with .code: "push_unsupported", "permission_denied", or
 *     the server's error code (e.g. "push_not_configured").
 *
 * async disablePush(): boolean
 *     Unsubscribes this browser and deletes its subscription on the server.
 *
 * The page must carry Django's `csrftoken` cookie (e.g. a view decorated
 * with ensure_csrf_cookie) for the POST to pass CSRF with cookie auth.
 * The service worker posts {type: "parley.push.resubscribe"} to open pages
 * when the browser replaced the subscription and it could not re-register
 * it itself; answer it with enablePush().
 */

const SW_URL = "/sw.js";
const SCOPE = "/";
const API = "/api/v1";
const STORED_ID = "parley.push.subscription_id";

export function pushSupported() {
  return (
    typeof window !== "undefined" &&
    "serviceWorker" in navigator &&
    "PushManager" in window &&
    "Notification" in window
  );
}

function fail(code, detail) {
  const error = new Error(detail);
  error.code = code;
  return error;
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function call(method, path, body) {
  const response = await fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = fail(data?.error?.code || "http_error", data?.error?.detail || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return { status: response.status, data };
}

function keyBytes(base64url) {
  const padded = base64url + "=".repeat((4 - (base64url.length % 4)) % 4);
  const raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  return a.length === bytes.length && a.every((v, i) => v === bytes[i]);
}

function activated(registration) {
  // pushManager.subscribe() needs an active worker; a page outside the
  // scope never sees navigator.serviceWorker.ready resolve, so wait here.
  if (registration.active) return Promise.resolve(registration);
  const worker = registration.installing || registration.waiting;
  return new Promise((resolve, reject) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve(registration);
      if (worker.state === "redundant") reject(fail("push_unsupported", "the service worker failed to install"));
    });
  });
}

export async function pushStatus() {
  if (!pushSupported()) {
    return { supported: false, permission: "unsupported", subscribed: false, endpoint: null };
  }
  const permission = Notification.permission;
  const registration = await navigator.serviceWorker.getRegistration(SCOPE);
  const subscription = registration ? await registration.pushManager.getSubscription() : null;
  return {
    supported: true,
    permission,
    subscribed: Boolean(subscription) && permission === "granted",
    endpoint: subscription ? subscription.endpoint : null,
  };
}

export async function enablePush() {
  if (!pushSupported()) throw fail("push_unsupported", "this browser cannot receive push notifications");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw fail("permission_denied", "notifications are not allowed for this site");

  const registration = await activated(await navigator.serviceWorker.register(SW_URL, { scope: SCOPE }));
  const { data } = await call("GET", "/push/public-key");
  const key = keyBytes(data.public_key);

  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
    // The server's VAPID key changed: the old subscription can never be used.
    await subscription.unsubscribe();
    subscription = null;
  }
  if (!subscription) {
    subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  const saved = await call("POST", "/push-subscriptions", subscription.toJSON());
  try {
    localStorage.setItem(STORED_ID, saved.data.subscription_id);
  } catch (_) {
    // storage may be disabled; disablePush() then only unsubscribes locally
  }
  return { subscriptionId: saved.data.subscription_id, created: saved.status === 201 };
}

export async function disablePush() {
  if (!pushSupported()) return false;
  const registration = await navigator.serviceWorker.getRegistration(SCOPE);
  const subscription = registration ? await registration.pushManager.getSubscription() : null;
  let id = null;
  try {
    id = localStorage.getItem(STORED_ID);
    localStorage.removeItem(STORED_ID);
  } catch (_) {
    id = null;
  }
  if (id) {
    await call("DELETE", `/push-subscriptions/${encodeURIComponent(id)}`).catch(() => null);
  }
  return subscription ? subscription.unsubscribe() : false;
}
