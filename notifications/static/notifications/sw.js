/*
 * Parley service worker: Web Push notifications with an exact app badge.
 *
 * Served from the site root as /sw.js (with "Service-Worker-Allowed: /") so
 * its scope covers /chat/. It has no fetch handler: it only handles pushes
 * and notification clicks, so controlling other pages changes nothing there.
 *
 * Every push payload is the server's absolute badge (never a delta):
 *   {"type": "badge", "unread": 2, "position": 123,
 *    "message": {"message_id", "sender_name", "preview", "sent_at"} | null}
 * The server sends a device its pushes one at a time, in log order, and never
 * a count older than one it already delivered, so the newest push is the truth.
 *
 * - unread > 0: navigator.setAppBadge(unread); unread == 0: clearAppBadge()
 *   and close our notifications.
 * - message set (a new support message): one notification per customer
 *   (a fixed tag: a subscription, and so this worker's pushes, belong to
 *   one customer at a time), renotify so the phone buzzes for each message.
 * - message null with unread > 0 (something was read on another device): a
 *   notification that is still showing is quietly replaced by a count; none
 *   is raised if the customer already dismissed it.
 * - a click focuses an open chat window, or opens /chat/.
 */

const TAG = "parley-chat";
const CHAT_URL = "/chat/";
// The chat app's icon (web/static); a missing icon only means a plainer notification.
const ICON = "/static/web/icons/icon-192.png";

self.addEventListener("install", () => {
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("push", (event) => {
  event.waitUntil(onPush(event));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openChat(event.notification.data));
});

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(onSubscriptionChange(event));
});

function parse(event) {
  if (!event.data) return null;
  let data;
  try {
    data = event.data.json();
  } catch (_) {
    return null;
  }
  if (!data || data.type !== "badge" || !Number.isInteger(data.unread) || data.unread < 0) return null;
  return data;
}

async function setBadge(unread) {
  const nav = self.navigator;
  try {
    if (unread > 0) {
      if (nav.setAppBadge) await nav.setAppBadge(unread);
    } else if (nav.clearAppBadge) {
      await nav.clearAppBadge();
    }
  } catch (_) {
    // Badging is not available here (or not allowed): notifications still work.
  }
}

function countText(unread) {
  return unread === 1 ? "1 unread message from support" : `${unread} unread messages from support`;
}

async function onPush(event) {
  const data = parse(event);
  if (!data) return;
  await setBadge(data.unread);
  const showing = await self.registration.getNotifications({ tag: TAG });

  if (data.unread === 0) {
    showing.forEach((n) => n.close());
    return;
  }
  const info = { url: CHAT_URL, unread: data.unread, position: data.position };
  if (data.message) {
    const m = data.message;
    await self.registration.showNotification(m.sender_name || "Support", {
      body: m.preview,
      icon: ICON,
      tag: TAG,
      renotify: true,
      timestamp: Date.parse(m.sent_at) || Date.now(),
      data: { ...info, message_id: m.message_id },
    });
    return;
  }
  if (showing.length > 0) {
    // The message on screen may be the one just read: show the count instead, quietly.
    await self.registration.showNotification("Support", {
      body: countText(data.unread),
      icon: ICON,
      tag: TAG,
      renotify: false,
      silent: true,
      data: info,
    });
  }
}

async function openChat(data) {
  const target = new URL((data && data.url) || CHAT_URL, self.location.origin);
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) {
    const url = new URL(client.url);
    if (url.origin === target.origin && url.pathname.startsWith(CHAT_URL) && "focus" in client) {
      return client.focus();
    }
  }
  return self.clients.openWindow(target.href);
}

function csrfFromCookieStore() {
  if (!self.cookieStore) return Promise.resolve("");
  return self.cookieStore.get("csrftoken").then((c) => (c ? c.value : ""), () => "");
}

async function onSubscriptionChange(event) {
  // The push service replaced this device's subscription. Register the new
  // one; if that cannot be done from here, open pages are told, and the
  // page's enablePush() does it on the next visit anyway.
  let subscription = event.newSubscription;
  try {
    if (!subscription) {
      const options = event.oldSubscription && event.oldSubscription.options;
      if (!options) throw new Error("no subscription options to renew with");
      subscription = await self.registration.pushManager.subscribe(options);
    }
    const response = await fetch("/api/v1/push-subscriptions", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": await csrfFromCookieStore() },
      body: JSON.stringify(subscription.toJSON()),
    });
    if (response.ok) return;
  } catch (_) {
    // fall through to the pages
  }
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  windows.forEach((client) => client.postMessage({ type: "parley.push.resubscribe" }));
}
