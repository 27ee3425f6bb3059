"""The unit of work writes rows exactly as Django would store them, on either backend.

On PostgreSQL a batch's rows go to the server as one JSON parameter that
``jsonb_populate_recordset`` turns back into the table's row type
(eventstore.tables.Table.json_rows), or, for a table with JSON kept as
text, as one binary array per column (Table.column_arrays); on SQLite as
plain VALUES. Read back
through the ORM, every value must come back as written: nested JSON with
awkward text, JSON null beside SQL NULL, times to the microsecond, dates,
floats, booleans, and the defaults of the columns a row leaves out.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import orjson
import pytest
from django.core.management import call_command
from django.db import connection, models
from django.test.utils import isolate_apps

from eventstore.tables import Table
from eventstore.unit import Unit
from readmodels.models import Conversation, EventRows, ReportFact

pytestmark = pytest.mark.django_db(transaction=True)

AWKWARD = 'quote " backslash \\ tab \t newline \n line separator \u2028 emoji \U0001f600 accents éß 中文'
WHEN = dt.datetime(2026, 12, 6, 23, 49, 41, 123456, tzinfo=dt.timezone.utc)


def _flush(fill) -> None:  # type: ignore[no-untyped-def]
    unit = Unit()
    fill(unit)
    unit.flush()


def _conversation(customer_id: uuid.UUID, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "customer_id": customer_id,
        "last_message": {"body": AWKWARD, "sent_at": WHEN.isoformat(), "nested": {"list": [1, 2.5, None, True]}},
        "unread_for_agents": 3,
        "awaiting_reply": True,
        "last_activity_at": WHEN,
        "status": "open",
        "assignee_id": None,
        "assignee_name": AWKWARD,
        "snoozed_until": None,
        "first_response_due_at": WHEN + dt.timedelta(minutes=5),
        "sla_breached": False,
        "labels": ["billing", "vip"],
        "rating": None,
        "tx": 7,
        "position": 11,
    }
    row.update(changes)
    return row


def test_rows_come_back_as_written_and_an_upsert_replaces_them():
    customer_id = uuid.uuid4()
    _flush(lambda unit: unit.save(Conversation, _conversation(customer_id)))
    stored = Conversation.objects.get(customer_id=customer_id)
    assert stored.last_message == {"body": AWKWARD, "sent_at": WHEN.isoformat(),
                                   "nested": {"list": [1, 2.5, None, True]}}
    assert stored.assignee_name == AWKWARD
    assert stored.last_activity_at == WHEN
    assert stored.first_response_due_at == WHEN + dt.timedelta(minutes=5)
    assert stored.assignee_id is None and stored.snoozed_until is None
    assert stored.rating is None  # SQL NULL, as Django stores None in a nullable JSON column
    assert stored.labels == ["billing", "vip"]
    assert (stored.unread_for_agents, stored.awaiting_reply, stored.sla_breached) == (3, True, False)

    rating = {"score": 5, "comment": AWKWARD, "rated_at": WHEN.isoformat()}
    _flush(lambda unit: unit.save(Conversation, _conversation(
        customer_id, status="resolved", assignee_id="42", rating=rating, labels=[], awaiting_reply=False)))
    stored = Conversation.objects.get(customer_id=customer_id)
    assert (stored.status, stored.assignee_id, stored.rating, stored.labels, stored.awaiting_reply) == (
        "resolved", "42", rating, [], False)
    assert Conversation.objects.count() == 1


@pytest.mark.postgres
def test_rows_too_many_for_one_document_go_in_several_statements(monkeypatch):
    """PostgreSQL refuses a jsonb document over 256 MiB, which a rebuild's flush of
    hundreds of thousands of rows can pass: the rows are split into documents of at
    most ``DOCUMENT_CHARS`` (here made small), every one written once."""
    from eventstore import unit as units

    monkeypatch.setattr(units, "DOCUMENT_CHARS", 4_000)
    customers = [uuid.uuid4() for _ in range(40)]
    rows = [_conversation(c, assignee_name=f"{AWKWARD} {i}") for i, c in enumerate(customers)]
    statements = Unit()._insert(Unit().table(Conversation), rows, upsert=True)
    assert len(statements) > 4
    assert all(len(params[0]) <= 4_000 for _, params in statements)
    sent = [row["customer_id"] for _, params in statements for row in orjson.loads(params[0])]
    assert sent == [str(c) for c in customers]  # every row once, in order

    def fill(unit: Unit) -> None:
        for row in rows:
            unit.save(Conversation, row)

    _flush(fill)
    stored = dict(Conversation.objects.values_list("customer_id", "assignee_name"))
    assert stored == {c: f"{AWKWARD} {i}" for i, c in enumerate(customers)}


def test_a_row_that_leaves_columns_out_gets_their_defaults():
    customer_id = uuid.uuid4()
    sparse = {"customer_id": customer_id, "last_message": None, "last_activity_at": WHEN, "tx": 1, "position": 2}
    _flush(lambda unit: unit.save(Conversation, sparse))
    stored = Conversation.objects.get(customer_id=customer_id)
    assert (stored.status, stored.unread_for_agents, stored.labels, stored.assignee_name) == ("open", 0, [], "")
    assert stored.last_message is None


def test_dates_and_floats_keep_their_exact_values():
    facts = [
        {"key": f'wait:"{i}"', "customer_id": uuid.uuid4(), "kind": "wait", "day": dt.date(2026, 12, i + 1),
         "agent_id": "", "value": value, "tx": 1, "position": i}
        for i, value in enumerate([0.1 + 0.2, 1e-9, 123456789.123456789, 2.0])
    ]
    _flush(lambda unit: [unit.save(ReportFact, dict(f)) for f in facts])
    stored = {f.key: f for f in ReportFact.objects.all()}
    for f in facts:
        assert stored[f["key"]].value == f["value"]  # bit for bit: no text round trip loses a digit
        assert stored[f["key"]].day == f["day"]


def test_added_rows_unless_they_exist_are_written_once():
    customer_id = uuid.uuid4()
    fact = {"key": "once", "customer_id": customer_id, "kind": "message", "day": dt.date(2026, 12, 6),
            "agent_id": "7", "value": 1.0, "tx": 1, "position": 1}
    _flush(lambda unit: unit.add(ReportFact, dict(fact), unless_exists=["key"]))
    _flush(lambda unit: unit.add(ReportFact, dict(fact, value=9.0), unless_exists=["key"]))
    assert list(ReportFact.objects.values_list("key", "value")) == [("once", 1.0)]


def test_the_json_of_a_batch_holds_every_column_and_what_json_cannot_say_as_postgresql_reads_it():
    table = Table.of(ReportFact)
    row = {"key": "k", "customer_id": uuid.UUID(int=1), "kind": "wait", "day": dt.date(2026, 1, 2),
           "value": decimal.Decimal("1.50"), "tx": 1, "position": 2}
    (written,) = orjson.loads(table.json_rows([row], table.insertable()))
    assert written == {"key": "k", "customer_id": "00000000-0000-0000-0000-000000000001", "kind": "wait",
                       "day": "2026-01-02", "agent_id": "", "value": "1.50", "tx": 1, "position": 2}
    assert "agent_id" not in row  # the default went into the JSON, not into the caller's row
    (with_bytes,) = orjson.loads(table.json_rows([dict(row, key=b"\x00\xff")], ["key"]))
    assert with_bytes["key"] == "\\x00ff"  # bytea's input form
    nested = Table.of(Conversation).json_rows([_conversation(uuid.uuid4(), rating={1: "int key"})], ["rating"])
    assert orjson.loads(nested)[0]["rating"] == {"1": "int key"}  # as json.dumps writes it
    with pytest.raises(TypeError):
        table.json_rows([dict(row, value=object())], ["value"])


def _event_rows(position: int, customer_id: uuid.UUID, **changes: object) -> dict[str, object]:
    rows = {"message": {"body": AWKWARD, "sent_at": WHEN.isoformat(), "zeta": 1, "alpha": [1, 2.5, None, True]},
            "badge": {"unread": 3, "moved": True}}
    return {"position": position, "tx": 5, "customer_id": customer_id, "rows": rows, "written_at": WHEN} | changes


def _stored_text(position: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rows FROM readmodels_eventrows WHERE position = %s", [position])
        (text,) = cursor.fetchone()
    return text


def test_json_kept_as_text_comes_back_as_written_and_is_stored_as_the_unit_wrote_it():
    customer_id = uuid.uuid4()
    row = _event_rows(10, customer_id)
    _flush(lambda unit: unit.save(EventRows, row))
    stored = EventRows.objects.get(position=10)
    assert (stored.rows, stored.tx, stored.customer_id, stored.written_at) == (row["rows"], 5, customer_id, WHEN)
    assert stored.shard == 0  # the column's default, for a row that leaves it out
    # Stored as the pipeline wrote it: its keys in its order, which jsonb would have sorted.
    assert _stored_text(10) == orjson.dumps(row["rows"]).decode()

    unit = Unit()
    unit.want(EventRows, [10])
    unit.load()
    assert unit.get(EventRows, 10)["rows"] == row["rows"]  # a group that follows reads it back parsed

    _flush(lambda unit: unit.save(EventRows, _event_rows(10, customer_id, rows={"badge": {"unread": 0}}, shard=2)))
    assert list(EventRows.objects.values_list("position", "rows", "shard")) == [(10, {"badge": {"unread": 0}}, 2)]


@pytest.mark.postgres
def test_a_table_with_json_kept_as_text_goes_as_one_array_per_column_in_bounded_statements(monkeypatch):
    from eventstore import unit as units

    table = Unit().table(EventRows)
    assert table.arrays and not Unit().table(Conversation).arrays
    monkeypatch.setattr(units, "ARRAY_ROWS", 3)
    customers = [uuid.uuid4() for _ in range(7)]
    rows = [_event_rows(i, c, rows={"n": i, "body": AWKWARD}) for i, c in enumerate(customers)]
    statements = Unit()._insert(table, rows, upsert=True)
    assert [len(params[0]) for _, params in statements] == [3, 3, 1]
    assert all("unnest(" in sql and "jsonb" not in sql for sql, _ in statements)

    def fill(unit: Unit) -> None:
        for row in rows:
            unit.save(EventRows, row)

    _flush(fill)
    assert dict(EventRows.objects.values_list("position", "rows")) == {i: {"n": i, "body": AWKWARD} for i in range(7)}


@pytest.mark.postgres
def test_copy_writes_json_kept_as_text_as_its_text():
    from eventstore.unit import copy_rows

    row = _event_rows(3, uuid.uuid4())
    connection.ensure_connection()
    copy_rows(connection.connection, Table.of(EventRows), [row])
    assert EventRows.objects.get(position=3).rows == row["rows"]
    assert _stored_text(3) == orjson.dumps(row["rows"]).decode()


def test_the_migration_converts_the_rows_as_of_each_event_both_ways():
    row = _event_rows(4, uuid.uuid4())
    _flush(lambda unit: unit.save(EventRows, row))
    try:
        call_command("migrate", "readmodels", "0013", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT rows FROM readmodels_eventrows WHERE position = 4")
            (back,) = cursor.fetchone()
        assert orjson.loads(back) == row["rows"]  # JSON again, every value kept
        if connection.vendor == "postgresql":
            assert _rows_type() == "jsonb"
    finally:
        call_command("migrate", "readmodels", verbosity=0)
    assert EventRows.objects.get(position=4).rows == row["rows"]
    if connection.vendor == "postgresql":
        assert _rows_type() == "text"


def _rows_type() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT data_type FROM information_schema.columns "
                       "WHERE table_name = 'readmodels_eventrows' AND column_name = 'rows'")
        (data_type,) = cursor.fetchone()
    return data_type


def test_a_table_is_described_once_per_model_and_database():
    assert Table.of(Conversation) is Table.of(Conversation)
    assert Table.of(Conversation) is not Table.of(ReportFact)


@isolate_apps("eventstore")  # the model below stays out of the project's registry (and its migrations)
def test_a_model_whose_column_is_not_named_as_its_attname_is_refused():
    class Renamed(models.Model):
        key = models.CharField(primary_key=True, max_length=20)
        value = models.IntegerField(db_column="amount")

        class Meta:
            app_label = "eventstore"
            managed = False

    refused = r"eventstore\.Renamed\.value: its column 'amount' is not named as its attname 'value'"
    with pytest.raises(TypeError, match=refused):
        Table.of(Renamed)
    with pytest.raises(TypeError, match=refused):
        Table(Renamed)  # as workers.jobs builds its table
    with pytest.raises(TypeError, match=refused):
        Unit().table(Renamed)


def test_growth_counts_rows_added_less_rows_removed_and_not_rows_read_and_saved_again():
    """What the unit reports to eventstore.statistics after each flush (``Unit.grown``)."""
    table = Conversation._meta.db_table
    stored = uuid.uuid4()
    _flush(lambda unit: unit.save(Conversation, _conversation(stored)))

    unit = Unit()
    unit.want(Conversation, [stored])
    unit.load()
    unit.save(Conversation, _conversation(stored, status="resolved"))  # read by key: an update
    unit.save(Conversation, _conversation(uuid.uuid4()))  # never read: counted as new
    unit.save(Conversation, _conversation(uuid.uuid4()))
    unit.flush()
    assert unit.grown[table] == 2

    unit.remove(Conversation, stored)
    unit.flush()
    assert unit.grown[table] == 1  # the counts add up over flushes
    assert Conversation.objects.count() == 2

    rebuild = Unit(keep=True)  # a rebuild's unit fills tables of its own and reports nothing
    rebuild.save(Conversation, _conversation(uuid.uuid4()))
    rebuild.flush()
    assert not rebuild.grown
