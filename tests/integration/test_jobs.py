"""The one durable queue (workers.jobs) on its own: claims, lanes, groups, leases, settling, purging.

Its rows here are webhook deliveries written directly (a lane is an
endpoint and a customer, a group an endpoint), without the process
manager or any HTTP: what is checked is the mechanism every kind of job
shares. Several tests run real threads with connections of their own, so
on PostgreSQL two claims really race (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection

from outbound.models import WebhookDelivery, WebhookEndpoint, WebhookState
from outbound.outbox import WEBHOOKS
from workers import jobs

pytestmark = pytest.mark.django_db(transaction=True)

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
LEASE = 60.0


def endpoint(name: str = "a") -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        url=f"https://{name}.example.com/hooks", events=["message.created"], secret="whsec_x", created_at=NOW
    )


def queue(ep: WebhookEndpoint, customer: uuid.UUID, count: int = 1, *, due: dt.datetime = NOW) -> list[int]:
    """``count`` rows in the lane (``ep``, ``customer``), in order; their ids."""
    ids = []
    for i in range(count):
        row = WebhookDelivery.objects.create(
            event_id=uuid.uuid4(), endpoint=ep, customer_id=customer, event_type="message.created", body="{}",
            tx=0, position=i, created_at=due, due_at=due, give_up_at=due + dt.timedelta(days=1),
        )
        ids.append(row.pk)
    return ids


def claim(owner: str = "w1", *, at: dt.datetime = NOW, **kwargs: Any) -> list[jobs.Round[WebhookDelivery]]:
    kwargs.setdefault("lanes", 16)
    return WEBHOOKS.claim(at, owner=owner, lease=LEASE, **kwargs)


def ids(rounds: list[jobs.Round[WebhookDelivery]]) -> list[int]:
    return sorted(row.pk for r in rounds for row in r.rows())


def delivered(*pks: int) -> list[jobs.Done]:
    return [jobs.Done(pk, WebhookState.DELIVERED) for pk in pks]


def test_only_the_head_of_a_lane_is_claimed_and_the_next_once_it_is_settled():
    ep, ada, bob = endpoint(), uuid.uuid4(), uuid.uuid4()
    a1, a2 = queue(ep, ada, 2)
    (b1,) = queue(ep, bob)
    assert ids(claim()) == [a1, b1]  # one row per lane, the oldest
    assert claim("w2") == []  # a leased head holds back its lane; the other lane is leased too
    assert WEBHOOKS.settle(NOW, owner="w1", done=delivered(a1)) == {a1}
    assert ids(claim("w2")) == [a2]
    assert WEBHOOKS.settle(NOW, done=delivered(a1)) == set()  # finished once: a second settle changes nothing


def test_a_retry_holds_back_its_lane_until_it_is_due_and_other_lanes_go_on():
    ep, ada, bob = endpoint(), uuid.uuid4(), uuid.uuid4()
    a1, a2 = queue(ep, ada, 2)
    claim()
    later = NOW + dt.timedelta(minutes=5)
    WEBHOOKS.settle(NOW, owner="w1", retry=[jobs.Retry(a1, later, "503")])
    (b1,) = queue(ep, bob)
    assert ids(claim("w2")) == [b1]  # Ada's second row waits behind her first
    assert WEBHOOKS.next_due(NOW) == NOW + dt.timedelta(seconds=LEASE)  # the soonest: Bob's lease could lapse
    WEBHOOKS.settle(NOW, owner="w2", done=delivered(b1))
    assert WEBHOOKS.next_due(NOW) == later
    assert ids(claim("w3", at=later)) == [a1]
    row = WebhookDelivery.objects.get(pk=a1)
    assert (row.state, row.attempts, row.reason) == (WebhookState.PENDING, 1, "503")
    assert WebhookDelivery.objects.get(pk=a2).due_at == NOW


def test_a_lapsed_lease_is_claimed_again_and_its_old_holder_cannot_hand_it_back():
    ep = endpoint()
    (a1,) = queue(ep, uuid.uuid4())
    [first] = claim("dead")
    assert WebhookDelivery.objects.get(pk=a1).lease_owner == "dead"
    assert claim("w2", at=NOW + dt.timedelta(seconds=LEASE - 1)) == []  # still leased
    after = NOW + dt.timedelta(seconds=LEASE + 1)
    assert ids(claim("w2", at=after)) == [a1]
    WEBHOOKS.release("dead", first.due)  # the first holder wakes up: not its lease any more
    row = WebhookDelivery.objects.get(pk=a1)
    assert row.lease_owner == "w2" and row.due_at > after


def test_handing_back_puts_each_row_back_as_it_was():
    ep = endpoint()
    early, late = NOW - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=1)
    (a1,) = queue(ep, uuid.uuid4(), due=early)
    (b1,) = queue(ep, uuid.uuid4(), due=late)
    rounds = claim()
    assert {r.due[a1] for r in rounds if a1 in r.due} == {early}
    WEBHOOKS.release("w1", {pk: at for r in rounds for pk, at in r.due.items()})
    assert dict(WebhookDelivery.objects.values_list("pk", "due_at")) == {a1: early, b1: late}
    assert set(WebhookDelivery.objects.values_list("lease_owner", flat=True)) == {""}


def test_a_group_gets_no_more_rounds_than_its_share_and_the_others_are_found_past_it():
    busy_ep, other_ep = endpoint("busy"), endpoint("other")
    for _ in range(40):  # older than anything of the other endpoint
        queue(busy_ep, uuid.uuid4(), due=NOW - dt.timedelta(minutes=1))
    (other,) = queue(other_ep, uuid.uuid4())
    rounds = claim(rounds=3, lanes=4, per_group=2)
    groups = [r.group for r in rounds]
    assert sorted(map(str, groups)) == sorted(map(str, [busy_ep.pk, busy_ep.pk, other_ep.pk]))
    assert all(len({row.endpoint_id for row in r.rows()}) == 1 for r in rounds)  # one group per round
    assert other in ids(rounds)
    # A process already working on two rounds of it gets none of it.
    assert claim("w2", rounds=3, lanes=4, busy={busy_ep.pk: 2}, per_group=2) == []


def test_purge_deletes_finished_rows_older_than_the_cutoff_and_nothing_pending():
    ep = endpoint()
    old, recent, waiting = queue(ep, uuid.uuid4()) + queue(ep, uuid.uuid4()) + queue(ep, uuid.uuid4())
    claim()
    WEBHOOKS.settle(NOW - dt.timedelta(days=40), owner="w1", done=delivered(old))
    WEBHOOKS.settle(NOW, owner="w1", done=delivered(recent))
    assert WEBHOOKS.purge(NOW - dt.timedelta(days=30)) == 1
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {recent, waiting}


def test_many_workers_at_once_finish_every_row_exactly_once_and_each_lane_in_order():
    eps = [endpoint(f"e{i}") for i in range(3)]
    lanes = {(ep.pk, uuid.uuid4()): [] for ep in eps for _ in range(4)}
    for (ep_id, customer), rows in lanes.items():
        rows += queue(WebhookEndpoint.objects.get(pk=ep_id), customer, 5)
    lane_of = {pk: key for key, rows in lanes.items() for pk in rows}
    worked: list[int] = []
    in_flight: dict[Any, int] = defaultdict(int)
    overlaps: list[Any] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(owner: str) -> None:
        try:
            start.wait()
            idle = 0
            while idle < 20:
                rounds = claim(owner, rounds=1, lanes=2, per_group=1)
                if not rounds:
                    idle += 1
                    continue
                idle = 0
                held = [row.pk for row in rounds[0].rows()]
                with lock:
                    for pk in held:
                        in_flight[lane_of[pk]] += 1
                        if in_flight[lane_of[pk]] > 1:
                            overlaps.append(lane_of[pk])
                        worked.append(pk)
                time.sleep(0.001)  # the work, outside any transaction
                with lock:
                    for pk in held:
                        in_flight[lane_of[pk]] -= 1
                WEBHOOKS.settle(NOW, owner=owner, done=delivered(*held))
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(worked) == sorted(lane_of)  # every row once
    assert overlaps == []  # never two rows of one lane at once
    for rows in lanes.values():
        assert [pk for pk in worked if pk in rows] == rows  # each lane in its order
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {WebhookState.DELIVERED}
