// The customer's chat page: one conversation with the support team
// (customer.js), with what only a page of its own has: the unread count in
// the tab title and on the app icon, the notifications offer, and the
// "session ended" and "conversation deleted" overlays.

import { customerChat } from "./customer.js";
import { $, readConfig } from "./dom.js";
import { setupMenus } from "./menus.js";
import { setupPushOffer } from "./push-offer.js";

const config = readConfig();
const baseTitle = document.title;
// Sent here by the website widget's "Get notifications" (a frame of another
// site may not ask for the permission): the offer is the first thing to see.
const forNotifications = location.hash === "#notifications";

function showBadge(unread) {
  document.title = unread ? `(${unread}) ${baseTitle}` : baseTitle;
  try {
    if (unread && navigator.setAppBadge) navigator.setAppBadge(unread);
    else if (!unread && navigator.clearAppBadge) navigator.clearAppBadge();
  } catch {
    /* app badges are a nicety */
  }
}

const chat = customerChat({
  config,
  autofocus: !forNotifications,
  onBadge: showBadge,
  onEnded: () => {
    $("#ended").hidden = false;
  },
  onErased: () => {
    $("#erased").hidden = false;
  },
});

setupMenus();
const pushOffer = setupPushOffer({
  button: $("#enable-push"), bar: $("#push-offer"), note: $("#push-note"), off: $("#disable-push"), modulePath: config.pushModule,
});
chat.start();

if (forNotifications) {
  history.replaceState(null, "", location.pathname);
  pushOffer.then(() => {
    const button = $("#enable-push");
    if (!button.hidden) button.focus();
  });
}

// For people debugging a deployment, and for the browser tests.
window.parley = { socket: chat.socket, thread: chat.thread, messenger: chat.messenger, composer: chat.composer };
