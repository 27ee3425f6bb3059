"""A consumer group that cannot process an event stalls alone, says so, and can be moved past it.

The read models share one transaction; the process managers that send
(push, webhooks, email fallback) are groups of their own that follow them.
A bug in one of those, or a malformed event, stops only the groups that
must handle it; ``readmodels_status``, /healthz and /metrics name the event;
``park_event`` skips it for that group and ``replay_parked`` hands it over
again once the code is fixed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from eventstore import groups
from eventstore.models import Parked
from eventstore.runner import LostLease
from notifications.models import PushDelivery, PushSubscription
from outbound import types as webhook_types
from outbound.models import WebhookDelivery
from project.bootstrap import GROUPS, group
from readmodels.models import Badge, TimelineMessage
from tests.conftest import new_id
from tests.integration.webhook_support import receiver, register  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def drive(name: str, rounds: int = 200) -> list[Exception]:
    """Run a group the way its worker does: batch after batch, a failure retried,
    until it has nothing more to do; returns the failures it met."""
    runner = group(name)
    failures: list[Exception] = []
    assert runner.acquire_lease()
    try:
        for _ in range(rounds):
            try:
                progress = runner.process_batch()
            except LostLease:
                raise
            except Exception as exc:
                failures.append(exc)
                continue
            if not progress.moved:
                break
    finally:
        runner.release_lease()
    return failures


def drive_all() -> dict[str, list[Exception]]:
    return {name: drive(name) for name in GROUPS}


def subscribe(customer: Any) -> None:
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    PushSubscription.objects.create(customer_id=customer.id, endpoint=f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4()}",
                                    p256dh="k", auth="a", created_at=earlier, updated_at=earlier)


def agent_says(agent: Any, customer: Any, body: str) -> str:
    message_id = new_id()
    r = agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": message_id, "body": body})
    assert r.status_code == 201, r.content
    return message_id


def append_malformed_message(customer_id: str) -> uuid.UUID:
    """A MessageSent row whose payload this code cannot decode (as a bad migration or
    a newer writer could leave), appended as the store would."""
    event_id = uuid.uuid4()
    postgres = connection.vendor == "postgresql"
    tx = "pg_current_xact_id()::text::bigint" if postgres else "0"
    with connection.cursor() as c:
        c.execute(
            "INSERT INTO parley_events (event_id, stream_id, version, event_type, schema_version, data, metadata, "
            f"recorded_at, tx) VALUES (%s, %s, 1, 'MessageSent', 2, %s, '{{}}', %s, {tx})",
            [event_id if postgres else event_id.hex, f"message-{uuid.uuid4()}",
             json.dumps({"customer_id": customer_id, "body": "half a message"}),
             dt.datetime.now(dt.timezone.utc) if postgres else dt.datetime.utcnow().isoformat(" ")],
        )
    return event_id


def status_text() -> str:
    out = io.StringIO()
    call_command("readmodels_status", stdout=out)
    return out.getvalue()


def test_a_bug_in_the_webhooks_stalls_webhooks_alone_until_the_event_is_parked_then_replayed(
    client, receiver, customer, agent, monkeypatch, settings  # noqa: F811
):
    register(client, receiver, ["message.created"])
    subscribe(customer)
    poison = agent_says(agent, customer, "this one trips the webhook builder")
    later = agent_says(agent, customer, "and this one comes after")

    real = webhook_types.BY_SOURCE["MessageSent"]

    def buggy(event: Any, rows: Any) -> Any:
        if str(event.message_id) == poison:
            raise ValueError("a bug in message.created")
        return real.build(event, rows)

    monkeypatch.setitem(webhook_types.BY_SOURCE, "MessageSent", dataclasses.replace(real, build=buggy))
    failures = drive_all()

    # Webhooks stopped on the one event, and said which.
    assert failures["webhooks"] and all("a bug in message.created" in str(f) for f in failures["webhooks"])
    stuck = groups.status("webhooks")["error"]
    assert stuck is not None and stuck["member"] == "webhooks" and "a bug in message.created" in stuck["detail"]
    (poison_event,) = [r for r in _log() if str(getattr(r.event, "message_id", "")) == poison]
    assert stuck["event_id"] == str(poison_event.event_id)
    assert WebhookDelivery.objects.count() == 0
    # Everything else went on: read models, push (the badge as of each message), email, workflow.
    assert not any(failures[n] for n in GROUPS if n != "webhooks")
    assert Badge.objects.get(customer_id=customer.id).unread == 2
    assert sorted(PushDelivery.objects.values_list("unread", flat=True)) == [1, 2]
    assert all(groups.status(n)["error"] is None for n in GROUPS if n != "webhooks")
    text = status_text()
    assert f"STUCK on event {poison_event.event_id}" in text and f"park_event webhooks {poison_event.event_id}" in text

    # /healthz names it to the operator and still answers 200 (the pipeline is fine, once it
    # has also applied what the workflow appended after it: the agent's reply assigned the
    # conversation); /metrics counts it.
    assert drive("pipeline") == []
    settings.PARLEY_METRICS_KEY = "operator-key"
    health = client.get("/healthz", HTTP_AUTHORIZATION="Bearer operator-key")
    assert health.status_code == 200
    assert health.json()["consumers"]["webhooks"]["error"]["event_id"] == str(poison_event.event_id)
    assert health.json()["consumers"]["push"]["error"] is None

    # Parked for webhooks only: the group goes on with the next event.
    out = io.StringIO()
    call_command("park_event", "webhooks", str(poison_event.event_id), stdout=out)
    assert "parked MessageSent" in out.getvalue()
    assert drive("webhooks") == []
    assert [json.loads(b)["data"]["body"] for b in WebhookDelivery.objects.values_list("body", flat=True)] == [
        "and this one comes after"]
    assert groups.status("webhooks")["error"] is None and groups.status("webhooks")["parked"] == 1
    listed = io.StringIO()
    call_command("parked_events", stdout=listed)
    assert str(poison_event.event_id) in listed.getvalue() and "a bug in message.created" in listed.getvalue()

    # The code is fixed: the parked event is delivered after all, once, as of itself.
    monkeypatch.setitem(webhook_types.BY_SOURCE, "MessageSent", real)
    replayed = io.StringIO()
    call_command("replay_parked", "webhooks", stdout=replayed)
    assert "replayed 1 parked event(s) for webhooks" in replayed.getvalue()
    bodies = sorted(json.loads(b)["data"]["body"] for b in WebhookDelivery.objects.values_list("body", flat=True))
    assert bodies == ["and this one comes after", "this one trips the webhook builder"]
    assert Parked.objects.get().replayed_at is not None and groups.status("webhooks")["parked"] == 0
    call_command("replay_parked", "webhooks", stdout=io.StringIO())
    assert WebhookDelivery.objects.count() == 2  # a second replay changes nothing
    assert later  # (sent after the poison event, delivered before it was replayed)


def test_a_malformed_event_stops_only_the_groups_that_want_its_type_and_parking_it_lets_them_go_on(
    customer, agent
):
    first = agent_says(agent, customer, "before")
    bad = append_malformed_message(customer.id)
    after = agent_says(agent, customer, "after")
    failures = drive_all()

    # The read models and the workflow want MessageSent: each stopped on it, naming it.
    for name in ("pipeline", "workflow"):
        assert failures[name], name
        error = groups.status(name)["error"]
        assert error is not None and error["event_id"] == str(bad) and "cannot be decoded" in error["detail"]
    # The read models are current up to it; the groups that follow them wait there, without error.
    assert set(TimelineMessage.objects.values_list("body", flat=True)) == {"before"}
    assert Badge.objects.get(customer_id=customer.id).unread == 1
    push, pipeline = groups.status("push"), groups.status("pipeline")
    # Waiting: the bad event, "after", and the assignment the workflow made of the
    # first reply (it reads the log up to the bad event too).
    assert push["error"] is None and push["position"] == pipeline["position"] and push["lag"] == 3

    call_command("park_event", "pipeline", str(bad), stdout=io.StringIO())
    call_command("park_event", "workflow", str(bad), stdout=io.StringIO())
    failures = drive_all()
    assert not any(failures.values()), failures
    assert set(TimelineMessage.objects.values_list("body", flat=True)) == {"before", "after"}
    assert Badge.objects.get(customer_id=customer.id).unread == 2
    assert all(groups.status(n)["error"] is None for n in GROUPS)
    assert {first, after} == {str(m) for m in TimelineMessage.objects.values_list("message_id", flat=True)}


def test_parking_is_refused_for_an_unknown_group_an_unknown_event_or_one_already_processed(customer, agent):
    done = agent_says(agent, customer, "processed")
    drive_all()
    (event,) = [r for r in _log() if str(getattr(r.event, "message_id", "")) == done]
    for args, message in [
        (("nope", str(event.event_id)), "no consumer group named 'nope'"),
        (("push", str(uuid.uuid4())), "no event"),
        (("push", "not-a-uuid"), "is not an event id"),
        (("push", str(event.event_id)), "has processed event"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("park_event", *args, stdout=io.StringIO())
    assert Parked.objects.count() == 0


def test_frames_that_cannot_be_built_stop_nothing(customer, agent, monkeypatch):
    """The fan-out builds frames inside the pipeline's transaction: a bug there is
    logged and counted, and the read models commit anyway (dispatchers read the
    stretch from the log)."""
    from observability.metrics import CONSUMER_ERRORS
    from realtime import fanout

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in a frame")

    monkeypatch.setattr(fanout, "envelopes", broken)
    before = CONSUMER_ERRORS.labels("pipeline", "realtime")._value.get()
    agent_says(agent, customer, "frames or not")
    assert drive("pipeline") == []
    assert Badge.objects.get(customer_id=customer.id).unread == 1
    assert CONSUMER_ERRORS.labels("pipeline", "realtime")._value.get() == before + 1


def test_every_group_is_listed_with_its_position_even_before_it_ran():
    text = status_text()
    for name in GROUPS:
        assert name in text
    assert "not running" in text


def _log() -> list[Any]:
    from eventstore.events import Cursor
    from eventstore.store import EventStore

    return EventStore().read_all(Cursor.start(), limit=10_000)
