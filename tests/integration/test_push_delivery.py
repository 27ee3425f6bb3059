"""Push, end to end inside one process: HTTP API -> log -> badge projection ->
push process manager -> outbox -> delivery worker -> a real Web Push service."""

from __future__ import annotations

import pytest

from eventstore.models import Checkpoint
from eventstore.runner import ConsumerRunner
from notifications.models import DeliveryState, PushDelivery, PushSubscription
from notifications.payload import MAX_PAYLOAD_BYTES, topic_for
from notifications.process_manager import PushProcessManager
from tests.integration.test_push_support import (
    SUBJECT,
    Clock,
    agent_says,
    customer_reads,
    make_worker,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    states,
    subscribe,
    summary,
    vapid_keys,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_devices_receive_the_true_badge_for_send_send_and_a_read_elsewhere(push, vapid_keys, customer, agent):
    phone = subscribe(push, customer, vapid_keys)
    laptop = subscribe(push, customer, vapid_keys)
    worker = make_worker()

    first, p1 = agent_says(agent, customer, "Your order has shipped")
    run_pipeline()
    worker.drain()
    second, p2 = agent_says(agent, customer, "It arrives on Tuesday")
    run_pipeline()
    worker.drain()
    p3 = customer_reads(customer, first)  # read on the laptop; both devices learn the new count
    run_pipeline()
    worker.drain()

    expected = [(1, p1, first), (2, p2, second), (1, p3, None)]
    for device in (phone, laptop):
        assert [summary(p) for p in device.payloads()] == expected
        deliveries = device.deliveries()
        assert [d.urgency for d in deliveries] == ["high", "high", "low"]
        assert {d.topic for d in deliveries} == {topic_for(customer.id)}
        assert all(d.ttl > 0 for d in deliveries)
        assert all(d.vapid_claims["sub"] == SUBJECT for d in deliveries)
        assert all(d.vapid_key == vapid_keys.public_key for d in deliveries)
    assert customer.get("/api/v1/badge").json()["unread"] == 1
    message = phone.payloads()[0]["message"]
    assert message["preview"] == "Your order has shipped"
    assert message["sender_name"] == "Grace"
    assert set(message) == {"message_id", "sender_name", "preview", "sent_at"}
    assert set(phone.payloads()[0]) == {"type", "unread", "position", "message"}
    assert phone.payloads()[0]["type"] == "badge"


def test_a_redelivered_event_sends_nothing_new(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    agent_says(agent, customer)
    run_pipeline()
    make_worker().drain()
    rows = PushDelivery.objects.count()

    # Replay the push process manager over events it has already handled.
    Checkpoint.objects.filter(name="push").update(tx=0, position=0)
    assert ConsumerRunner(PushProcessManager()).catch_up() > 0
    make_worker().drain()

    assert PushDelivery.objects.count() == rows == 1
    assert len(device.payloads()) == 1
    assert push.requests == 1


def test_customer_messages_and_agent_reads_push_nothing(push, vapid_keys, customer, agent):
    subscribe(push, customer, vapid_keys)
    mid = "1b6c7a0e-0b8e-4d7c-9a39-5f4a2b0c9d11"
    assert customer.post("/api/v1/messages", {"message_id": mid, "body": "Help!"}).status_code == 201
    assert agent.post(f"/api/v1/messages/{mid}/read").status_code == 200
    run_pipeline()
    make_worker().drain()
    assert PushDelivery.objects.count() == 0
    assert push.requests == 0


def test_customers_without_devices_queue_nothing(push, vapid_keys, make_customer, agent):
    lonely = make_customer(name="Lonely")
    agent_says(agent, lonely)
    run_pipeline()
    assert PushDelivery.objects.count() == 0


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_removed_with_its_rows_and_others_still_get_theirs(
    push, vapid_keys, customer, agent, status
):
    stale = subscribe(push, customer, vapid_keys)
    fresh = subscribe(push, customer, vapid_keys)
    stale.push.fail_next(status)
    agent_says(agent, customer)
    run_pipeline()
    make_worker().drain()

    assert not PushSubscription.objects.filter(pk=stale.subscription_id).exists()
    assert not PushDelivery.objects.filter(subscription_id=stale.subscription_id).exists()
    assert len(fresh.payloads()) == 1
    assert stale.payloads() == []

    agent_says(agent, customer)  # the next message only goes to the live device
    run_pipeline()
    make_worker().drain()
    assert len(fresh.payloads()) == 2
    assert [r.status for r in push.rejections(stale.push.id)] == [status]


def test_a_throttled_push_waits_for_retry_after_and_is_delivered_once(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    device.push.fail_next(429, retry_after=120)
    clock = Clock()
    worker = make_worker(clock)
    agent_says(agent, customer)
    run_pipeline()

    worker.drain()
    sub = PushSubscription.objects.get(pk=device.subscription_id)
    assert sub.hold_until is not None
    assert (sub.hold_until - clock.now).total_seconds() == pytest.approx(120, abs=1)
    clock.advance(119)
    worker.drain()  # still held: nothing is sent before Retry-After
    assert push.requests == 1

    clock.advance(2)
    worker.drain()
    assert len(device.payloads()) == 1
    assert push.requests == 2
    row = PushDelivery.objects.get()
    assert (row.state, row.attempts, row.failures) == (DeliveryState.SENT, 2, 0)


def test_a_failing_push_backs_off_and_is_delivered_once_when_the_service_recovers(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    device.push.fail_next(500, times=2)
    clock = Clock()
    worker = make_worker(clock, backoff_base=10.0)
    agent_says(agent, customer)
    run_pipeline()

    holds = []
    for _ in range(2):
        before = clock.now  # the round takes its time at its start, a little after this
        worker.drain()
        after = clock.now
        hold = PushSubscription.objects.get(pk=device.subscription_id).hold_until
        # The wait the worker chose lies between these two (the clock is real time).
        holds.append(((hold - after).total_seconds(), (hold - before).total_seconds()))
        clock.advance(3600)
    worker.drain()

    assert len(device.payloads()) == 1
    assert [r.status for r in push.rejections(device.push.id)] == [500, 500]
    # Exponential, with jitter: 5-10 s after one failure, 10-20 s after two.
    (low1, high1), (low2, high2) = holds
    assert 5 <= high1 and low1 <= 10 and 10 <= high2 and low2 <= 20
    row = PushDelivery.objects.get()
    assert (row.state, row.failures) == (DeliveryState.SENT, 2)


def test_a_push_that_keeps_failing_is_parked_as_dead_with_the_reason(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    device.push.fail_next(503, times=3)
    clock = Clock()
    worker = make_worker(clock, max_failures=3, backoff_base=1.0)
    agent_says(agent, customer)
    run_pipeline()
    for _ in range(5):
        worker.drain()
        clock.advance(3600)

    row = PushDelivery.objects.get()
    assert row.state == DeliveryState.DEAD
    assert "3 failures" in row.reason and "503" in row.reason
    assert device.payloads() == []
    assert push.requests == 3
    # The device itself is fine: the next message goes out.
    agent_says(agent, customer)
    run_pipeline()
    worker.drain()
    assert len(device.payloads()) == 1


def test_an_unreachable_push_service_is_retried_then_parked(push, vapid_keys, customer, agent, settings):
    from tests.support.pushservice import PushService

    down = PushService().start()
    settings.PUSH_ENDPOINT_INSECURE_HOSTS = [down.base_url.removeprefix("http://")]
    sub = down.new_subscription()
    assert customer.post("/api/v1/push-subscriptions", sub.to_json()).status_code == 201
    down.stop()
    clock = Clock()
    worker = make_worker(clock, max_failures=2, backoff_base=1.0)
    agent_says(agent, customer)
    run_pipeline()
    for _ in range(3):
        worker.drain()
        clock.advance(3600)
    row = PushDelivery.objects.get()
    assert row.state == DeliveryState.DEAD
    assert "network" in row.reason


def test_no_push_for_a_message_read_before_the_worker_runs(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    mid, _ = agent_says(agent, customer)
    run_pipeline()  # the push is queued...
    customer_reads(customer, mid)  # ...and the customer reads it on the open page first
    make_worker().drain()
    run_pipeline()  # the read's badge-only update: the device never showed a count
    make_worker().drain()

    assert device.payloads() == []
    assert push.requests == 0
    assert states() == {DeliveryState.DROPPED: 2}
    assert set(PushDelivery.objects.values_list("reason", flat=True)) == {"message already read", "badge unchanged"}


def test_a_backlog_for_one_device_is_sent_with_the_newest_count_and_never_goes_back(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    first, _ = agent_says(agent, customer, "one")
    second, p2 = agent_says(agent, customer, "two")
    third, _ = agent_says(agent, customer, "three")
    p4 = customer_reads(customer, third)
    run_pipeline()
    make_worker().drain()

    # "three" was read before the worker ran; the rest go out with the count
    # as of the last event, and the read's own update has nothing left to say.
    assert [summary(p) for p in device.payloads()] == [(2, p4, first), (2, p4, second)]
    assert sorted(PushDelivery.objects.values_list("state", flat=True)) == sorted(
        [DeliveryState.SENT, DeliveryState.SENT, DeliveryState.DROPPED, DeliveryState.DROPPED]
    )
    assert customer.get("/api/v1/badge").json()["unread"] == 2
    assert p2 < p4


def test_a_long_message_is_cut_to_fit_the_push_size_limit(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    agent_says(agent, customer, "\U0001f600" * 3999)  # 4 bytes each: 16 KB of text
    run_pipeline()
    make_worker().drain()
    [delivery] = device.deliveries()
    assert len(delivery.payload) <= MAX_PAYLOAD_BYTES
    preview = delivery.json()["message"]["preview"]
    assert preview.endswith("\u2026") and preview.startswith("\U0001f600")


def test_an_edit_before_the_push_leaves_shows_the_new_text(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    mid, _ = agent_says(agent, customer, "Helo")
    run_pipeline()
    assert agent.patch(f"/api/v1/messages/{mid}", {"body": "Hello"}).status_code == 200
    make_worker().drain()
    assert device.payloads()[0]["message"]["preview"] == "Hello"


def test_a_row_marked_sent_is_never_sent_again(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    agent_says(agent, customer)
    run_pipeline()
    clock = Clock()
    make_worker(clock).drain()
    # Even a worker whose clock is far ahead (every lease long expired) finds nothing.
    clock.advance(10 * 3600)
    assert make_worker(clock).drain().devices == 0
    assert len(device.payloads()) == 1


def test_a_device_moved_to_another_customer_loses_the_previous_owners_queue(push, vapid_keys, make_customer, agent):
    ada, bob = make_customer(name="Ada"), make_customer(name="Bob", email="bob@example.com")
    device = subscribe(push, ada, vapid_keys)
    agent_says(agent, ada, "for Ada only")
    run_pipeline()
    r = bob.post("/api/v1/push-subscriptions", device.push.to_json())
    assert r.status_code == 200 and r.json()["subscription_id"] == device.subscription_id
    make_worker().drain()
    assert device.payloads() == []
    agent_says(agent, bob, "for Bob")
    run_pipeline()
    make_worker().drain()
    assert [p["message"]["preview"] for p in device.payloads()] == ["for Bob"]


def test_expired_rows_are_dropped_not_sent(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    agent_says(agent, customer)
    run_pipeline()
    clock = Clock()
    clock.advance(2 * 24 * 3600)
    make_worker(clock).drain()
    assert device.payloads() == []
    assert PushDelivery.objects.get().reason == "expired"


def test_a_device_hears_only_about_what_happened_after_it_subscribed(push, vapid_keys, customer, agent):
    agent_says(agent, customer, "sent before this phone subscribed")
    device = subscribe(push, customer, vapid_keys)
    run_pipeline()
    make_worker().drain()
    assert PushDelivery.objects.count() == 0
    assert device.payloads() == []


# Redirects from a push service (never followed, a failed attempt): tests/integration/test_push_redirects.py


def test_a_device_the_previous_release_leased_or_held_is_left_to_it(push, vapid_keys, customer, agent):
    """During a deploy the previous release's workers, which leased and held devices
    rather than rows, may still run: a device one of them holds is not pushed to."""
    import datetime as dt

    device = subscribe(push, customer, vapid_keys)
    agent_says(agent, customer)
    run_pipeline()
    clock = Clock()
    for column in ("lease_until", "hold_until"):
        PushSubscription.objects.filter(pk=device.subscription_id).update(
            **{column: clock.now + dt.timedelta(seconds=30)}
        )
        assert make_worker(clock).drain().devices == 0
        PushSubscription.objects.filter(pk=device.subscription_id).update(**{column: None})
    make_worker(clock).drain()
    assert len(device.payloads()) == 1
