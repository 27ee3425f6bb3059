// The pages' icons as inline SVG: a <use> of the drawing the page carries
// once (web/icons.py puts every one in base.html as a <symbol>). Never a
// character: emoji and symbol glyphs render as empty boxes where no font
// has them.

const SVG = "http://www.w3.org/2000/svg";

export function icon(name, extraClass = "") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", `icon${extraClass ? ` ${extraClass}` : ""}`);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#icon-${name}`);
  svg.append(use);
  return svg;
}

// A preview of a message of files alone starts with a paperclip character
// (the API's one-line preview, also a push notification's text): on the
// page, that character becomes the drawing.
const PAPERCLIP = "\u{1F4CE} ";

export function previewNodes(text) {
  if (typeof text === "string" && text.startsWith(PAPERCLIP)) {
    return [icon("paperclip", "icon--inline"), text.slice(PAPERCLIP.length)];
  }
  return [text];
}
