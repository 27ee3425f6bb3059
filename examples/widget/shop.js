// The example host page's own script (no inline script: the page's CSP forbids it).

// The queue from docs/widget.md: calls made before widget.js has loaded wait
// in Parley.q, and widget.js runs them in order when it arrives.
window.Parley = window.Parley || function () { (Parley.q = Parley.q || []).push(arguments); };

// A signed-in page would boot with the token its server got:
//   Parley("boot", { token: "<customer token>" });
// This one boots as a visitor (widget.js boots by itself when nobody asked).

function note(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`; // text, never HTML
  document.getElementById("events").prepend(item);
}

Parley("on", "ready", () => note("ready"));
Parley("on", "unread", (count) => {
  document.getElementById("unread").textContent = String(count);
  note(`unread: ${count}`);
});
Parley("on", "message", (message) => note(`message from the ${message.sender.kind}: ${message.body}`));
Parley("on", "error", (error) => note(`error: ${error.code}`));

document.addEventListener("DOMContentLoaded", () => {
  const on = (id, fn) => document.getElementById(id).addEventListener("click", fn);
  on("open", () => Parley("open"));
  on("close", () => Parley("close"));
  on("signout", () => Parley("logout"));
  on("shutdown", () => Parley("shutdown"));
  on("boot", () => Parley("boot"));
  document.getElementById("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    Parley("identify", { token: input.value.trim() });
    input.value = "";
  });
});
