"""Plain SVG bar charts for the reports page: geometry computed here, drawn by the template.

No script and no chart library: the page prints as it shows, and a reader
of a screen gets each chart's figures from its title, its description and
the table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 640, 180
#: Room for the axis' labels (left) and the days' labels (bottom).
LEFT, BOTTOM, TOP = 44, 22, 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what the bar is (a day, a score)
    value: str  # its figure, as shown
    tick: bool  # whether its label is written under the axis


@dataclass(frozen=True)
class Chart:
    title: str
    summary: str
    bars: list[Bar]
    top: str  # the axis' highest figure, as shown
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    base: int = HEIGHT - BOTTOM


def bars(title: str, points: list[tuple[str, float | None]], *, unit: str = "", every: int = 1) -> Chart:
    """A bar per point (label, value; None draws nothing), scaled to the largest; ``every``: label one bar in so many."""
    values = [v for _, v in points if v is not None]
    peak = max(values, default=0.0) or 1.0
    slot = (WIDTH - LEFT) / max(1, len(points))
    usable = HEIGHT - BOTTOM - TOP
    drawn = []
    for i, (label, value) in enumerate(points):
        h = (value or 0.0) / peak * usable
        drawn.append(Bar(x=round(LEFT + i * slot + slot * 0.15, 1), y=round(HEIGHT - BOTTOM - h, 1),
                         width=round(slot * 0.7, 1), height=round(h, 1), label=label,
                         value="none" if value is None else f"{_figure(value)}{unit}", tick=i % every == 0))
    shown = ", ".join(f"{b.label}: {b.value}" for b in drawn if b.value != "none" and b.height > 0)
    return Chart(title=title, summary=shown or "nothing in this range", bars=drawn,
                 top=f"{_figure(peak if values else 0)}{unit}")


def _figure(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
