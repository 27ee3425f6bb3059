"""No credential in a URL reaches an access log line (project.daphne.redact): not a query
value (``/chat/?token=``), not a token that is a path segment (an email's unsubscribe and
verify links)."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver

from project.daphne import redact

SECRET = "c2VjcmV0:1tZ9Xq:aBcD-eF_gH"  # shaped like a signed token (django.core.signing)
#: A path converter whose value is a credential, by its name (``<str:token>``).
_CREDENTIAL = re.compile(r"<(?:\w+:)?\w*(?:token|signed|signature|secret)\w*>")
_OTHER = re.compile(r"<(?:\w+:)?\w+>")


def test_a_token_in_an_email_links_path_is_replaced_as_query_values_are():
    assert redact(f"GET /email/unsubscribe/{SECRET}/") == "GET /email/unsubscribe/…/"
    assert redact(f"POST /email/verify/{SECRET}/?next={SECRET}") == "POST /email/verify/…/?next=…"
    assert redact(f"GET /email/verify/{SECRET}") == "GET /email/verify/…"
    assert redact(f"WSCONNECT /ws/v1/?token={SECRET}") == "WSCONNECT /ws/v1/?token=…"
    # Paths that hold no credential are logged as they are.
    assert redact("GET /api/v1/conversations/5f0c/messages") == "GET /api/v1/conversations/5f0c/messages"
    assert redact("GET /email/") == "GET /email/"


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, route)
        else:
            found.append(route)
    return found


def test_every_route_with_a_token_in_its_path_is_redacted():
    """A new route that carries a token or signed value in its path fails here until redact knows it."""
    carrying = [r for r in _routes(get_resolver().url_patterns) if _CREDENTIAL.search(r)]
    assert len(carrying) >= 2, carrying  # the unsubscribe and verify links at least
    for route in carrying:
        path = "/" + _OTHER.sub("x", _CREDENTIAL.sub(SECRET, route))
        line = redact(f"GET {path}")
        assert SECRET not in line and SECRET.split(":")[-1] not in line, (route, line)
