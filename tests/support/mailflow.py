"""Helpers of the email fallback tests: write, read, and run the workers at a given time."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from notifications import mailer
from project.bootstrap import email_fallback, pipeline
from workers import timers

#: The fallback delay every email test runs with (its settings fixture sets it).
DELAY = dt.timedelta(seconds=600)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def agent_says(agent: Any, customer: Any, body: str = "Hi!") -> str:
    mid = str(uuid.uuid4())
    r = agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": mid, "body": body})
    assert r.status_code == 201, r.content
    return mid


def customer_reads(customer: Any, message_id: str) -> None:
    r = customer.post(f"/api/v1/messages/{message_id}/read")
    assert r.status_code == 200, r.content


def work(at: dt.datetime) -> int:
    """Everything the workers do, once, at ``at``: the pipeline, the email
    fallback process manager, the due timers, the outbox. Returns emails sent."""
    pipeline().catch_up()
    email_fallback().catch_up()
    timers.fire_due(now=at)
    return mailer.send_due(now=at)


def later() -> dt.datetime:
    """A moment after every message written so far fell due."""
    return now() + DELAY + dt.timedelta(seconds=1)


def parts(message: Any) -> dict[str, str]:
    """The content types of a Django EmailMultiAlternatives and their bodies."""
    found = {"text/plain": message.body}
    for content, mimetype in message.alternatives:
        found[mimetype] = content
    return found
