"""Tables the consumer groups fill are analysed as they double (eventstore.statistics).

A prepared statement's generic plan is kept until its table's statistics
change; one made while a read model's table was tiny scans the table as it
grows. These tests run on PostgreSQL, with the analyser's own thread and
connection, and look at what the server says: the table's statistics, and
the plan of a prepared lookup.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from customers.services import customer_register
from eventstore import statistics
from project.bootstrap import group

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PROBE = "parley_analyse_probe"


@pytest.fixture
def analyser(monkeypatch: pytest.MonkeyPatch, settings) -> statistics.Analyser:
    """A fresh analyser for this process (the module's keeps what earlier tests taught it)."""
    settings.PARLEY_DB_ANALYZE_ROWS = 100
    fresh = statistics.Analyser()
    monkeypatch.setattr(statistics, "analyser", fresh)
    return fresh


@pytest.fixture
def probe():
    with connection.cursor() as c:
        # Autovacuum kept off it: its own analyses would change what the tests count.
        c.execute(f"CREATE TABLE {PROBE} (id integer PRIMARY KEY, body text NOT NULL DEFAULT '') "
                  "WITH (autovacuum_enabled = off)")
    yield PROBE
    with connection.cursor() as c:
        c.execute(f"DROP TABLE IF EXISTS {PROBE}")


def _fill(start: int, stop: int) -> None:
    with connection.cursor() as c:
        c.execute(f"INSERT INTO {PROBE} (id) SELECT g FROM generate_series(%s, %s - 1) g", [start, stop])


def _reltuples(table: str) -> float:
    with connection.cursor() as c:
        c.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [table])
        return float(c.fetchone()[0])


def _settle(analyser: statistics.Analyser) -> None:
    assert analyser.wait(30), "the analyser is still busy after 30 s"


def _grow(analyser: statistics.Analyser, table: str, rows: int) -> int:
    """Report ``rows`` added to ``table`` and wait for the analyser: the analyses of it so far."""
    analyser.grew({table: rows}, "postgresql")
    _settle(analyser)
    return analyser.analysed[table]


@pytest.fixture
def timeline():
    """The timeline's table, with autovacuum kept off it for the test."""
    table = "readmodels_timelinemessage"
    with connection.cursor() as c:
        c.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    yield table
    with connection.cursor() as c:
        c.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")


def test_the_pipeline_analyses_a_read_model_it_filled(analyser, timeline):
    """The runner reports each committed batch's new rows; the timeline, grown from empty
    past the threshold, is analysed once, and its statistics count its rows."""
    assert _reltuples(timeline) <= 0  # emptied between tests, never analysed since
    for i in range(30):
        customer = customer_register(name=f"Grower {i}").customer
        actor = Actor(SenderKind.CUSTOMER, str(customer.id), "Grower")
        for j in range(5):
            send_message(SendMessage(uuid.uuid4(), customer.id, actor, f"message {j}"))
    runner = group("pipeline")
    runner.batch_size = 50  # several batches, so that the count adds up over commits
    counted = REGISTRY.get_sample_value("parley_db_analyses_total", {"table": timeline}) or 0.0
    assert runner.catch_up() > 0
    _settle(analyser)
    assert analyser.analysed[timeline] == 1
    assert REGISTRY.get_sample_value("parley_db_analyses_total", {"table": timeline}) == counted + 1
    # Counted as the analysis ran, alongside the batches that followed (it never holds one up).
    assert 100 <= _reltuples(timeline) <= 150


def test_the_threshold_doubles_with_the_table(analyser, probe):
    _fill(0, 150)
    assert _grow(analyser, probe, 50) == 0  # under PARLEY_DB_ANALYZE_ROWS
    assert _grow(analyser, probe, 100) == 1
    assert _reltuples(probe) == 150
    _fill(150, 250)
    assert _grow(analyser, probe, 100) == 1  # 100 rows added to 150: not doubled
    assert _reltuples(probe) == 150
    _fill(250, 310)
    assert _grow(analyser, probe, 60) == 2  # 160 since the analysis, of 150 then
    assert _reltuples(probe) == 310


def _analysed_columns(table: str) -> set[str]:
    with connection.cursor() as c:
        c.execute("SELECT attname FROM pg_stats WHERE schemaname = current_schema() AND tablename = %s", [table])
        return {r[0] for r in c.fetchall()}


def test_the_columns_of_the_indexes_only(analyser, probe):
    """The other columns cost most of an analysis and choose no plan: autovacuum does them."""
    with connection.cursor() as c:
        c.execute(f"CREATE INDEX {probe}_by_tag ON {probe} ((body || ''), id)")  # an expression: no column of its own
        c.execute(f"ALTER TABLE {probe} ADD COLUMN tag text")
        c.execute(f"CREATE INDEX {probe}_tag ON {probe} (tag)")
    _fill(0, 200)
    assert _grow(analyser, probe, 200) == 1
    assert _analysed_columns(probe) == {"id", "tag"}
    assert _reltuples(probe) == 200  # the table's size is counted whatever the columns


def test_a_table_first_seen_full_waits_until_this_process_added_as_many(analyser, probe):
    """After a restart the process knows nothing of a big table: it does not analyse it
    again for its first rows, but once it added as many as the table held."""
    _fill(0, 1000)
    with connection.cursor() as c:
        c.execute(f"ANALYZE {probe}")
    assert _grow(analyser, probe, 200) == 0
    _fill(1000, 2100)
    assert _grow(analyser, probe, 900) == 1
    assert _reltuples(probe) == 2100


def test_an_analysis_skipped_for_a_lock_is_not_counted_and_comes_again(analyser, probe):
    """ANALYZE (SKIP_LOCKED) only warns when another analysis or a vacuum holds the table:
    not counted as done, and tried again once the table has grown as much again."""
    import psycopg

    _fill(0, 200)
    other = psycopg.connect(**connection.get_connection_params())  # another session, as a vacuum would be
    try:
        other.execute(f"LOCK TABLE {probe} IN SHARE UPDATE EXCLUSIVE MODE")  # what ANALYZE and VACUUM take
        assert _grow(analyser, probe, 200) == 0
        assert _reltuples(probe) <= 0
    finally:
        other.rollback()
        other.close()
    _fill(200, 400)
    assert _grow(analyser, probe, 200) == 1
    assert _reltuples(probe) == 400


def test_a_failed_analysis_is_not_counted_and_keeps_the_rows_added_while_it_ran(analyser, probe, monkeypatch):
    """A failure (here: while reading the table's columns, as a lost connection would fail it)
    is tried again once the table has grown as much again; rows added while it ran count."""
    indexed_columns = statistics._indexed_columns
    calls = []

    def failing_once(cursor, name):
        calls.append(name)
        if len(calls) == 1:
            analyser.grew({probe: 60}, "postgresql")  # a batch commits while the analysis runs
            raise RuntimeError("the connection was lost")
        return indexed_columns(cursor, name)

    monkeypatch.setattr(statistics, "_indexed_columns", failing_once)
    _fill(0, 200)
    assert _grow(analyser, probe, 100) == 0
    assert _reltuples(probe) <= 0
    assert _grow(analyser, probe, 40) == 1  # 60 kept from the failed run, and 40 more: 100
    assert calls == [probe, probe]
    assert _reltuples(probe) == 200


def test_rows_removed_count_against_growth(analyser, probe):
    """A table whose rows come and go (unread marks) is not taken for one that grows."""
    analyser.grew({probe: 90}, "postgresql")
    analyser.grew({probe: -90}, "postgresql")
    assert _grow(analyser, probe, 90) == 0  # 90 net, under PARLEY_DB_ANALYZE_ROWS
    _fill(0, 110)
    assert _grow(analyser, probe, 20) == 1


def test_nothing_on_sqlite_or_when_turned_off(analyser, probe, settings):
    analyser.grew({probe: 10**6}, "sqlite")
    settings.PARLEY_DB_ANALYZE_ROWS = 0
    analyser.grew({probe: 10**6}, "postgresql")
    _settle(analyser)
    assert not analyser.analysed
    assert _reltuples(probe) <= 0


def test_a_generic_plan_made_on_a_tiny_table_is_made_again_once_it_grew(analyser, probe):
    """What the analyses are for: a prepared lookup planned while the table held one row
    scans it; once the table grew and was analysed, the same statement uses the index."""
    _fill(0, 1)
    with connection.cursor() as c:
        c.execute(f"ANALYZE {probe}")
        c.execute("SET plan_cache_mode = force_generic_plan")  # the plan PostgreSQL keeps, at once
        try:
            c.execute(f"PREPARE lookup(integer[]) AS SELECT body FROM {probe} WHERE id = ANY($1)")

            def plan() -> str:
                c.execute("EXPLAIN EXECUTE lookup('{1,2,3}')")
                return "\n".join(r[0] for r in c.fetchall())

            assert "Seq Scan" in plan()
            _fill(1, 20_000)
            assert "Seq Scan" in plan()  # kept: the table's statistics did not change
            assert _grow(analyser, probe, 19_999) == 1
            assert "Index" in plan() and "Seq Scan" not in plan()
        finally:
            c.execute("DEALLOCATE ALL")
            c.execute("RESET plan_cache_mode")
