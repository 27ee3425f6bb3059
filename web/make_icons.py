"""Draw Parley's app icons (PNG and SVG) with the standard library alone.

Run ``python -m web.make_icons`` after changing the design; the files it
writes under web/static/web/icons/ are committed, so nothing is built at
run time. The mark is a white speech bubble with three dots on teal.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "static" / "web" / "icons"
TEAL = (15, 118, 110)
WHITE = (255, 255, 255)

Sdf = Callable[[float, float], float]


def rounded_box(cx: float, cy: float, hw: float, hh: float, r: float) -> Sdf:
    def d(x: float, y: float) -> float:
        qx, qy = abs(x - cx) - hw + r, abs(y - cy) - hh + r
        outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
        return outside + min(max(qx, qy), 0.0) - r

    return d


def circle(cx: float, cy: float, r: float) -> Sdf:
    return lambda x, y: math.hypot(x - cx, y - cy) - r


def triangle(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> Sdf:
    pts = [a, b, c]

    def d(x: float, y: float) -> float:
        best = float("inf")
        sides = []
        for i in range(3):
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % 3]
            ex, ey, wx, wy = x1 - x0, y1 - y0, x - x0, y - y0
            t = max(0.0, min(1.0, (wx * ex + wy * ey) / (ex * ex + ey * ey)))
            best = min(best, math.hypot(wx - ex * t, wy - ey * t))
            sides.append(ex * wy - ey * wx >= 0)
        inside = all(sides) or not any(sides)
        return -best if inside else best

    return d


def union(*shapes: Sdf) -> Sdf:
    return lambda x, y: min(s(x, y) for s in shapes)


def mark(scale: float) -> tuple[Sdf, Sdf]:
    """The bubble and its dots, scaled about the centre (1.0: the standard icon)."""

    def at(v: float) -> float:
        return 0.5 + (v - 0.5) * scale

    s = scale
    bubble = union(
        rounded_box(at(0.5), at(0.46), 0.29 * s, 0.21 * s, 0.11 * s),
        triangle((at(0.31), at(0.58)), (at(0.46), at(0.62)), (at(0.27), at(0.78))),
    )
    dots = union(*(circle(at(x), at(0.46), 0.038 * s) for x in (0.385, 0.5, 0.615)))
    return bubble, dots


def coverage(d: float, px: float) -> float:
    """Anti-aliased coverage of a pixel whose centre is ``d`` from an edge (in icon units)."""
    return max(0.0, min(1.0, 0.5 - d / px))


def render(size: int, *, rounded: bool, scale: float) -> bytes:
    px = 1.0 / size
    background = rounded_box(0.5, 0.5, 0.5, 0.5, 0.22) if rounded else (lambda x, y: -1.0)
    bubble, dots = mark(scale)
    rows = []
    for j in range(size):
        y = (j + 0.5) * px
        row = bytearray([0])  # filter type: none
        for i in range(size):
            x = (i + 0.5) * px
            a = coverage(background(x, y), px)
            if a == 0.0:
                row += b"\0\0\0\0"
                continue
            w = coverage(bubble(x, y), px) * (1.0 - coverage(dots(x, y), px))
            rgb = [round(t + (wv - t) * w) for t, wv in zip(TEAL, WHITE)]
            row += bytes([*rgb, round(a * 255)])
        rows.append(bytes(row))
    return png(size, size, b"".join(rows))


def png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
  <rect width="100" height="100" rx="22" fill="#0f766e"/>
  <path fill="#fff" d="M32 25h36a11 11 0 0 1 11 11v20a11 11 0 0 1-11 11H46l-19 11 4-13.5A11 11 0 0 1 21 56V36a11 11 0 0 1 11-11z"/>
  <g fill="#0f766e"><circle cx="38.5" cy="46" r="3.8"/><circle cx="50" cy="46" r="3.8"/><circle cx="61.5" cy="46" r="3.8"/></g>
</svg>
"""


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    outputs = {
        "icon-192.png": render(192, rounded=True, scale=1.0),
        "icon-512.png": render(512, rounded=True, scale=1.0),
        # Maskable: full bleed, the mark inside the central safe circle.
        "icon-maskable-512.png": render(512, rounded=False, scale=0.78),
        # iOS rounds the corners itself and wants no transparency.
        "apple-touch-icon.png": render(180, rounded=False, scale=0.9),
        "favicon-32.png": render(32, rounded=True, scale=1.05),
    }
    for name, data in outputs.items():
        (OUT / name).write_bytes(data)
    (OUT / "favicon.svg").write_text(SVG)
    print(f"wrote {', '.join(outputs)} and favicon.svg to {OUT}")


if __name__ == "__main__":
    main()
