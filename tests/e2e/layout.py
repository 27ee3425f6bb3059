"""What a page looks like, measured rather than looked at: the boxes of its
visible text and controls, as the browser laid them out.

``problems(page, regions)`` collects, inside the regions named by CSS
selectors (a header, a composer, an open menu), every visible control's
box and every line of visible text, and reports, as sentences:

* two of them that overlap (text on text, a control over a label...);
  an open menu is a layer of its own: what it covers is not compared
  with it, and its own items are compared among themselves;
* one that is not wholly inside the viewport (cut by the screen's edge);
* text cut inside its box (a button or a line whose content is wider
  than it, an ellipsis), a select whose chosen option does not fit
  ("Any statu"), a placeholder wider than its box;
* a control smaller than 40 × 40 px (a fingertip).

No screenshots are compared: the boxes are the layout.
"""

from __future__ import annotations

from typing import Any

#: Smallest touch target, CSS pixels.
TOUCH = 40

CHECK = r"""
({regions, touch}) => {
  const problems = [];
  const vw = document.documentElement.clientWidth;
  const vh = document.documentElement.clientHeight;
  const CONTROL = "button, select, input:not([type=hidden]), textarea, summary, a[href]";
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = typeof el.className === "string" && el.className ? `.${el.className.trim().split(/\s+/).join(".")}` : "";
    const text = (el.innerText || el.value || el.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return `${el.tagName.toLowerCase()}${id}${cls}${text ? ` "${text}"` : ""}`;
  };
  // Rendered and not hidden (a closed menu's panel, a visually hidden label: no box to speak of).
  const shown = (el) => {
    if (el.closest("[hidden]")) return false;
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.display === "none" || cs.visibility === "hidden" || cs.opacity === "0") return false;
      // A closed <details> shows its summary alone (its content keeps boxes the browser does not paint).
      const details = e.parentElement;
      if (details && details.tagName === "DETAILS" && !details.open && e.tagName !== "SUMMARY") return false;
    }
    const r = el.getBoundingClientRect();
    return r.width >= 2 && r.height >= 2;
  };
  const openPanels = [...document.querySelectorAll("details[open] > .menu__panel")].filter(shown);
  const layerOf = (el) => openPanels.find((p) => p.contains(el)) || null;
  const items = [];
  const seen = new Set();
  for (const selector of regions) {
    for (const region of document.querySelectorAll(selector)) {
      if (!shown(region)) continue;
      for (const el of region.querySelectorAll(CONTROL)) {
        if (seen.has(el) || !shown(el)) continue;
        seen.add(el);
        items.push({ el, kind: "control", rect: el.getBoundingClientRect(), layer: layerOf(el) });
      }
      const walker = document.createTreeWalker(region, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim()) continue;
        const parent = node.parentElement;
        if (!parent || parent.closest(CONTROL) || parent.closest("svg") || seen.has(node) || !shown(parent)) continue;
        seen.add(node);
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const rect of range.getClientRects()) {
          if (rect.width < 1 || rect.height < 1) continue;
          items.push({ el: parent, kind: "text", rect, layer: layerOf(parent), text: node.textContent.trim().slice(0, 40) });
        }
      }
    }
  }
  const name = (item) => (item.kind === "text" ? `text "${item.text}" in ${describe(item.el)}` : describe(item.el));
  const inter = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left)) * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
  const shrink = (r) => ({ left: r.left + 0.5, right: r.right - 0.5, top: r.top + 0.5, bottom: r.bottom - 0.5 });
  // What an open menu covers is behind it: not compared with it, nor with each other.
  const covered = (item) => !item.layer && openPanels.some((p) => inter(shrink(p.getBoundingClientRect()), item.rect) > 0);
  for (const item of items) {
    const r = item.rect;
    if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
      problems.push(`outside the ${vw}x${vh} viewport: ${name(item)} at ${Math.round(r.left)},${Math.round(r.top)}-${Math.round(r.right)},${Math.round(r.bottom)}`);
    }
  }
  const live = items.filter((i) => !covered(i));
  for (let i = 0; i < live.length; i++) {
    for (let j = i + 1; j < live.length; j++) {
      const a = live[i], b = live[j];
      if (a.layer !== b.layer) continue;
      if (a.el === b.el && a.kind === "text" && b.kind === "text") continue; // lines of one paragraph
      if (a.el !== b.el && (a.el.contains(b.el) || b.el.contains(a.el)) && (a.kind === "control" || b.kind === "control")) continue;
      if (inter(shrink(a.rect), shrink(b.rect)) > 0) problems.push(`overlap: ${name(a)} and ${name(b)}`);
    }
  }
  const canvas = document.createElement("canvas").getContext("2d");
  const textWidth = (text, el) => {
    const cs = getComputedStyle(el);
    canvas.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    return canvas.measureText(text).width;
  };
  const checked = new Set();
  for (const item of items) {
    const el = item.el;
    if (checked.has(el)) continue;
    checked.add(el);
    const cs = getComputedStyle(el);
    if (item.kind === "control") {
      const r = item.rect;
      if (r.width < touch - 0.5 || r.height < touch - 0.5) problems.push(`smaller than ${touch}x${touch}: ${describe(el)} is ${Math.round(r.width)}x${Math.round(r.height)}`);
      const inner = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      if (el.tagName === "SELECT" && el.selectedOptions.length) {
        const need = textWidth(el.selectedOptions[0].text, el) + 18; // the arrow
        if (need > inner + 0.5) problems.push(`cut: ${describe(el)} shows "${el.selectedOptions[0].text}" in ${Math.round(inner)} px, needs ${Math.round(need)}`);
      } else if ((el.tagName === "INPUT" || el.tagName === "TEXTAREA") && !el.value && el.placeholder) {
        const need = textWidth(el.placeholder, el);
        if (need > inner + 0.5) problems.push(`cut: the placeholder "${el.placeholder}" of ${describe(el)} needs ${Math.round(need)} px, has ${Math.round(inner)}`);
      } else if (el.tagName !== "INPUT" && el.tagName !== "TEXTAREA" && el.scrollWidth > el.clientWidth + 1) {
        problems.push(`cut: ${describe(el)} holds ${el.scrollWidth} px in ${el.clientWidth}`);
      }
    } else if (cs.overflowX !== "visible" || cs.textOverflow === "ellipsis") {
      if (el.scrollWidth > el.clientWidth + 1) problems.push(`cut: text of ${describe(el)} holds ${el.scrollWidth} px in ${el.clientWidth}`);
    }
  }
  return problems;
}
"""


def problems(page: Any, regions: list[str]) -> list[str]:
    """Every overlap, cut and too-small target in these regions (see the module docstring)."""
    return list(page.evaluate(CHECK, {"regions": regions, "touch": TOUCH}))


def assert_laid_out(page: Any, regions: list[str], what: str) -> None:
    found = problems(page, regions)
    assert found == [], f"{what}:\n  " + "\n  ".join(found)


def boxes(page: Any, regions: list[str]) -> int:
    """How many items the check measured (a check of nothing proves nothing)."""
    return int(page.evaluate(
        """(regions) => regions.flatMap((s) => [...document.querySelectorAll(s)])
             .flatMap((r) => [...r.querySelectorAll('button, select, input, textarea, summary, a[href]')]).length""",
        regions,
    ))
