// The "Enable notifications" offer. Push itself (service worker, VAPID,
// subscription) belongs to /static/notifications/push.js; this page only
// asks it. If that module is missing or the browser cannot do push, the
// offer simply does not appear.

const IOS = /iPad|iPhone|iPod/.test(navigator.userAgent) || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
const STANDALONE = window.matchMedia("(display-mode: standalone)").matches || navigator.standalone === true;

// pushStatus() answers {supported, permission, subscribed, endpoint}.
function stateOf(status) {
  if (!status || status.supported === false) return "unsupported";
  if (status.permission === "denied") return "denied";
  if (status.subscribed) return "enabled";
  return "available";
}

const NOTES = {
  denied: "Notifications are blocked for this site. You can allow them in your browser's site settings.",
  enabled: "Notifications are on: we'll let you know when we reply.",
  unavailable: "Notifications are not available on this server right now.",
  failed: "Notifications could not be turned on just now. Please try again later.",
  ios: "To get notifications on iPhone or iPad, add this page to your Home Screen (Share, then Add to Home Screen) and open it from there.",
};

// `bar`: what holds the offer (shown with the button).
export async function setupPushOffer({ button, note, off, modulePath, bar = null }) {
  let push;
  try {
    push = await import(modulePath);
  } catch {
    return "missing";
  }
  const say = (key) => {
    note.textContent = key ? NOTES[key] : "";
    note.hidden = !key;
  };
  const show = (state, noteKey = undefined) => {
    button.hidden = state !== "available";
    if (bar) bar.hidden = button.hidden;
    if (off) off.hidden = state !== "enabled";
    say(noteKey !== undefined ? noteKey : state === "denied" ? "denied" : null);
  };

  if (!push.pushSupported()) {
    show("unsupported", IOS && !STANDALONE ? "ios" : null);
    return "unsupported";
  }
  let state = "available";
  try {
    state = stateOf(await push.pushStatus());
  } catch {
    state = "available";
  }
  show(state);

  const enable = async ({ quiet }) => {
    try {
      await push.enablePush();
      show("enabled", quiet ? null : "enabled");
    } catch (err) {
      if (err && err.code === "permission_denied") show(Notification.permission === "denied" ? "denied" : "available");
      else if (err && err.code === "push_not_configured") show("unsupported", quiet ? null : "unavailable");
      else show("available", quiet ? null : "failed");
    }
  };

  // Permission already given: register again, in case the browser renewed
  // the subscription while no page was open (push.js asks for this).
  if (Notification.permission === "granted") enable({ quiet: true });
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data && event.data.type === "parley.push.resubscribe") enable({ quiet: true });
  });

  button.addEventListener("click", async () => {
    button.disabled = true;
    await enable({ quiet: false });
    button.disabled = false;
  });
  if (off) {
    off.addEventListener("click", async () => {
      off.disabled = true;
      try {
        await push.disablePush();
      } finally {
        off.disabled = false;
      }
      show("available");
    });
  }
  return state;
}
