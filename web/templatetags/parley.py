"""Template helpers for the pages."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.safestring import SafeString

from web import icons

register = template.Library()


@register.simple_tag
def demo_mode() -> bool:
    """True in the embedded development mode (PARLEY_DEBUG on), where hints for the demo belong."""
    return bool(settings.DEBUG)


@register.simple_tag
def icon(name: str, extra_class: str = "") -> SafeString:
    """An icon of web.icons, drawn from the page's sprite."""
    return icons.icon(name, extra_class)


@register.simple_tag
def icon_sprite() -> SafeString:
    """Every icon's drawing, once per page (base.html)."""
    return icons.sprite()


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: "45 s", "12 min", "3 h 5 min", "2 d 4 h"; "–" for none."""
    if seconds is None:
        return "\u2013"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"
