"""Template helpers for the pages."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def demo_mode() -> bool:
    """True in the embedded development mode (PARLEY_DEBUG on), where hints for the demo belong."""
    return bool(settings.DEBUG)
