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
