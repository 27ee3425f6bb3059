"""Fresh planner statistics for the tables the log's consumers fill.

The consumers' statements are prepared on each connection (project.settings),
and PostgreSQL keeps one *generic* plan per prepared statement once it costs
no more than planning each run. That plan is made for the table as it was
when it was made and is kept until the table's statistics change. On a new
database a read model's table is empty when its lookups are first planned,
so a lookup by key is planned as a scan of a tiny table; autovacuum's
``ANALYZE`` replans it, but only at its next round (``autovacuum_naptime``, a
minute) after 50 rows and a tenth of the table changed. A backlog applied
to fresh tables (a new installation importing traffic, a benchmark) grows
them a hundredfold in that minute, and every batch scans them meanwhile:
measured, bench/pipeline.py's backlog ran at half its speed (40 to 79 ms of
a 500-event batch went to one such scan of the reports' tallies).

So the consumer groups report the rows each committed batch added to each
table, less the rows it removed (``Unit.grown``; ``grew``), and once this
process has added as many rows to a table as it held at its last analysis,
and at least ``PARLEY_DB_ANALYZE_ROWS``, a thread of the process's own runs
``ANALYZE`` on it. The statistics change, and every connection's plans of
the table are made again for its size. The threshold doubles with the
table, so a table of n rows is analysed about
log2(n / PARLEY_DB_ANALYZE_ROWS) times as it fills, and a table that keeps
its size (badges and conversations, whose rows are updated; unread marks,
which come and go) never is. A table first seen by this process is not
analysed until the process has added as many rows as the table held then:
a restart does not analyse big tables again.

The thread has its own connection, so a batch never waits for an analysis
(``ANALYZE`` takes a lock that does not conflict with reads or writes of
rows). It analyses the columns of the table's indexes only: their
statistics, and the table's size, which every analysis updates, are what
choose between an index and a scan; the other columns (bodies, search
vectors, JSON) cost most of an analysis (measured: a tenth of PostgreSQL's
time during a backlog when every column was analysed), and a partial
analysis leaves autovacuum's count of changes as it was, so autovacuum
still analyses the whole table, and its expression indexes, on its own
schedule. ``SKIP_LOCKED``: an autovacuum at work on the table is
refreshing its statistics already. PostgreSQL only warns when it skips a
table (locked, or not owned by this role), so the analyses it counted
(``pg_stat_get_analyze_count``) tell whether one ran. A skipped or failed
analysis is logged and not counted; the table is looked at again once it
has grown as much again. SQLite keeps no plans between statements: nothing
to do there.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Mapping

from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper

from observability import metrics

log = logging.getLogger(__name__)


class Analyser:
    """Counts the rows added to each table by this process and analyses a table that doubled."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Empty, with no thread (also in a forked child: the parent's thread and lock are not its own)."""
        self._lock = threading.Lock()
        #: Rows added to each table since its last analysis here (or since it was first seen).
        self._since: Counter[str] = Counter()
        #: Each table's rows by its statistics at its last analysis here (absent: never looked at).
        self._rows: dict[str, float] = {}
        #: Tables handed to the thread and not yet done.
        self._due: set[str] = set()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        #: Analyses this process ran, per table.
        self.analysed: Counter[str] = Counter()

    @staticmethod
    def floor() -> int:
        return int(settings.PARLEY_DB_ANALYZE_ROWS)

    def grew(self, added: Mapping[str, int], vendor: str) -> None:
        """A committed batch added ``added[table]`` rows to each table (on a database of ``vendor``)."""
        floor = self.floor()
        if floor <= 0 or vendor != "postgresql":
            return
        with self._lock:
            due = False
            for name, n in added.items():
                if n == 0:
                    continue
                self._since[name] = max(0, self._since[name] + n)  # a table that shrank grows back first
                if name not in self._due and self._since[name] >= max(floor, self._rows.get(name, 0.0)):
                    self._due.add(name)
                    due = True
            if not self._due:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="analyse", daemon=True)
                self._thread.start()
            if due:
                self._wake.notify_all()

    def wait(self, timeout: float) -> bool:
        """Until no analysis is due or running (True), or ``timeout`` seconds passed (False)."""
        with self._lock:
            return self._wake.wait_for(lambda: not self._due, timeout)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait_for(lambda: bool(self._due))
                name = min(self._due)
                since = self._since[name]
            spent = True  # the rows counted so far are used up, done or not (a failure: tried again later)
            try:
                spent = self._analyse(name, since)
            except Exception:
                log.warning("ANALYZE of %s failed; it is tried again once the table has grown as much again",
                            name, exc_info=True)
            finally:
                try:
                    connection.close()  # analyses are rare: hold no connection between them
                except Exception:
                    pass
                with self._lock:
                    if spent:  # rows added while it ran count towards the next
                        self._since[name] = max(0, self._since[name] - since)
                    self._due.discard(name)
                    self._wake.notify_all()

    def _analyse(self, name: str, since: int) -> bool:
        """Analyse ``name``, ``since`` rows added to it here since the last time; False if it
        is not due yet (a table first seen full), and the rows counted so far stay counted."""
        with self._lock:
            known = self._rows.get(name)
        with connection.cursor() as c:
            rows, runs = _state(c, name)
            if known is None:
                with self._lock:
                    self._rows[name] = rows
                if since < max(self.floor(), rows):
                    return False  # a table with rows already: analysed once this process has added as many
            columns = _indexed_columns(c, name)
            listed = f" ({', '.join(map(connection.ops.quote_name, columns))})" if columns else ""
            c.execute(f"ANALYZE (SKIP_LOCKED) {connection.ops.quote_name(name)}{listed}")
            rows, after = _state(c, name)
        if after == runs:
            # Skipped with a warning, not an error: another analysis or a vacuum held the
            # table, or this role does not own it. Tried again once it has grown as much again.
            log.warning("ANALYZE of %s was skipped (the table was locked, or this role does not own it)", name,
                        extra={"table": name})
            return True
        with self._lock:
            self._rows[name] = rows
            self.analysed[name] += 1
        metrics.ANALYSES.labels(name).inc()
        log.info("ANALYZE %s: %d rows", name, rows, extra={"table": name, "rows": int(rows)})
        return True


def _state(cursor: CursorWrapper, name: str) -> tuple[float, int]:
    """The table's rows by its statistics (0 for a table never analysed, or gone), and the
    analyses PostgreSQL counted of it (its statistics views: ``ANALYZE`` by anyone)."""
    cursor.execute(
        "SELECT reltuples, pg_stat_get_analyze_count(oid) FROM pg_class WHERE oid = to_regclass(%s)",
        [connection.ops.quote_name(name)],
    )
    row = cursor.fetchone()
    if not row:
        return 0.0, 0
    return max(0.0, float(row[0])) if row[0] is not None else 0.0, int(row[1] or 0)


def _indexed_columns(cursor: CursorWrapper, name: str) -> list[str]:
    """The columns of the table's indexes: the ones whose statistics choose between an index and a scan."""
    cursor.execute(
        "SELECT DISTINCT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) ORDER BY 1",
        [connection.ops.quote_name(name)],
    )
    return [r[0] for r in cursor.fetchall()]


#: The process's analyser (one thread, one connection while it works).
analyser = Analyser()


def grew(added: Mapping[str, int], vendor: str) -> None:
    """See ``Analyser.grew``."""
    analyser.grew(added, vendor)
