// The pages' menus (<details class="menu">): one open at a time, closed by
// Escape or a click elsewhere, and always wholly on screen. A menu opens
// below its button, at its right edge; where that would leave the screen
// (a button at the left of a phone's screen) it moves sideways just enough,
// and where there is no room below (a button near the bottom) it opens
// above. The stylesheet caps its width at the screen's.

const MARGIN = 8;

function place(menu) {
  const panel = menu.querySelector(".menu__panel");
  if (!panel) return;
  panel.classList.remove("menu__panel--up");
  panel.style.left = "";
  panel.style.right = "";
  const width = document.documentElement.clientWidth;
  const height = document.documentElement.clientHeight;
  const anchor = menu.getBoundingClientRect();
  let box = panel.getBoundingClientRect();
  if (box.left < MARGIN) {
    // Anchored at the left edge instead, then pulled back onto the screen.
    panel.style.right = "auto";
    panel.style.left = `${Math.round(MARGIN - anchor.left)}px`;
  } else if (box.right > width - MARGIN) {
    panel.style.right = `${Math.round(anchor.right - (width - MARGIN))}px`;
  }
  box = panel.getBoundingClientRect();
  if (box.bottom > height - MARGIN && anchor.top - box.height - 6 >= MARGIN) panel.classList.add("menu__panel--up");
}

export function setupMenus(root = document) {
  const menus = () => [...root.querySelectorAll("details.menu")];
  // Placed as the menu opens, before anything is painted: a mutation
  // observer runs in the same task as the click ("toggle" would come a
  // task later, after a frame with the menu off the screen).
  const opened = new MutationObserver((records) => {
    for (const { target: menu } of records) {
      if (!menu.open) continue;
      for (const other of menus()) if (other !== menu && other.open && !other.contains(menu)) other.open = false;
      place(menu);
    }
  });
  for (const menu of menus()) opened.observe(menu, { attributes: true, attributeFilter: ["open"] });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    for (const menu of menus()) {
      if (!menu.open) continue;
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", (event) => {
    for (const menu of menus()) if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
  window.addEventListener("resize", () => {
    for (const menu of menus()) if (menu.open) place(menu);
  });
}
