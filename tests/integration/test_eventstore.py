"""Event-store contract: runs on SQLite, and again on PostgreSQL in CI."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eventstore.events import Cursor, Metadata, NewEvent, Undecodable
from eventstore.models import StoredEvent
from eventstore.reading import UnknownPosition
from eventstore.store import ConcurrencyConflict, DuplicateEvent, EventStore
from tests.eventstore_fixtures import noted

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def store() -> EventStore:
    return EventStore()


def test_appended_events_read_back_in_version_order_with_metadata(store):
    corr = uuid.uuid4()
    a, b = noted("a"), noted("b")
    written = store.append("s-1", [a, b], expected_version=0, metadata=Metadata(actor="agent:7", correlation_id=corr))
    assert [w.version for w in written] == [1, 2]
    got = store.read_stream("s-1")
    assert [r.event for r in got] == [a, b]
    assert [r.position for r in got] == [w.position for w in written]
    assert got[0].metadata == Metadata(actor="agent:7", correlation_id=corr)
    assert got[0].recorded_at.tzinfo is not None


def test_a_stale_expected_version_is_a_concurrency_conflict_and_appends_nothing(store):
    store.append("s-1", [noted()], expected_version=0)
    with pytest.raises(ConcurrencyConflict) as err:
        store.append("s-1", [noted()], expected_version=0)
    assert err.value.actual_version == 1
    assert StoredEvent.objects.count() == 1


def test_an_expected_version_ahead_of_the_stream_is_a_conflict(store):
    store.append("s-1", [noted()], expected_version=0)
    with pytest.raises(ConcurrencyConflict):
        store.append("s-1", [noted()], expected_version=3)
    assert store.stream_version("s-1") == 1


def test_reappending_a_stored_event_id_is_a_duplicate_not_a_conflict(store):
    first = NewEvent(noted())
    store.append("s-1", [first], expected_version=0)
    # Same event id to another stream, where the version is free: only the id collides.
    with pytest.raises(DuplicateEvent) as err:
        store.append("s-2", [NewEvent(noted(), event_id=first.event_id)], expected_version=0)
    assert err.value.event_ids == {first.event_id}
    assert StoredEvent.objects.count() == 1


def test_read_all_continues_exactly_after_a_cursor(store):
    positions = [store.append(f"s-{i}", [noted(str(i))], 0)[0].position for i in range(5)]
    everything = store.read_all(Cursor.start())
    assert [e.position for e in everything] == positions
    after_second = store.read_all(store.cursor_at(positions[1]))
    assert [e.position for e in after_second] == positions[2:]
    assert [e.position for e in store.read_all(Cursor.start(), limit=2)] == positions[:2]


def test_an_unknown_position_is_refused(store):
    with pytest.raises(UnknownPosition):
        store.cursor_at(999_999)


def test_a_type_filtered_batch_still_covers_every_scanned_row(store):
    store.append("s-1", [noted()], 0)
    last = store.append("s-2", [noted()], 0)[0]
    batch = store.read_batch(Cursor.start(), types={"something.Else"})
    assert batch.events == []
    assert batch.end == last.cursor


def _sent_by_two_customers() -> dict[str, str]:
    from chat.commands import Actor, SendMessage
    from chat.events import SenderKind
    from chat.handlers import send_message
    from customers.services import customer_register

    bodies = {}
    for name in ("Ada", "Grace"):
        customer = customer_register(name=name).customer.id
        bodies[str(customer)] = f"a secret of {name}'s"
        send_message(SendMessage(uuid.uuid4(), customer, Actor(SenderKind.CUSTOMER, str(customer)), bodies[str(customer)]))
    return bodies


def _key_reads(queries: CaptureQueriesContext) -> int:
    return sum("parley_subject_keys" in q["sql"] for q in queries.captured_queries)


def test_a_batch_opens_each_persons_sealed_fields_with_the_keys_its_own_read_brings(store):
    bodies = _sent_by_two_customers()
    with CaptureQueriesContext(connection) as queries:
        batch = store.read_batch(Cursor.start(), types={"MessageSent"})
    assert {str(r.event.customer_id): r.event.body for r in batch.events} == bodies
    # On PostgreSQL the keys come with the events (one statement); SQLite reads them apart.
    assert _key_reads(queries) == (0 if connection.vendor == "postgresql" else 1)


def test_a_subject_the_reads_pattern_misses_has_its_key_read_on_its_own(store, monkeypatch):
    from eventstore import reading

    bodies = _sent_by_two_customers()
    monkeypatch.setattr(reading, "_subject_sql", lambda: "NULL")  # the read brings no key at all
    with CaptureQueriesContext(connection) as queries:
        batch = store.read_batch(Cursor.start(), types={"MessageSent"})
    assert {str(r.event.customer_id): r.event.body for r in batch.events} == bodies
    assert _key_reads(queries) == 1


def test_the_reads_subject_sql_follows_the_declarations_not_just_their_number(monkeypatch):
    from eventstore import events, reading

    declared = events.personal_types()
    event_type, personal = sorted(declared.items())[0]
    before = reading._subject_sql()
    assert f"WHEN '{event_type}' THEN split_part(split_part(data, '\"{personal.subject}\":\"'" in before
    # As many declarations as before, one of them naming another field: the SQL must follow.
    monkeypatch.setitem(events._personal, event_type, events.Personal("someone_else", personal.fields))
    after = reading._subject_sql()
    assert '"someone_else":"' in after
    assert after != before


def test_a_personal_event_whose_payload_is_not_json_fails_nothing_but_itself(store):
    from tests.integration.test_consumer_isolation import append_malformed_message

    bodies = _sent_by_two_customers()
    customer = next(iter(bodies))
    bad = append_malformed_message(customer)
    StoredEvent.objects.filter(event_id=bad).update(data='{"customer_id": "' + customer + '", "body": ')
    batch = store.read_batch(Cursor.start(), types={"MessageSent"})
    assert [r.event_id for r in batch.events if isinstance(r.event, Undecodable)] == [bad]
    assert {str(r.event.customer_id): r.event.body for r in batch.events if r.event_id != bad} == bodies
