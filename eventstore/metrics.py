"""Consumer groups' position and lag, read from the database when Prometheus scrapes.

Counting them in the process that runs the group would tell nothing when
no process runs it, which is when it matters most: events pile up and no
one reports it. Read at scrape time from the checkpoint table instead, every
process (a web process, ``runworkers``, a standby) reports the same truth,
whichever of them holds the lease, and a lag that grows while ``running``
is 0 says the group is down.

Two small queries per group and scrape: the checkpoint row (with the
event the group is stuck on, if any, and its parked events), and the count
of readable events past it (the same as /healthz and ``readmodels_status``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence

from django.db import connection
from prometheus_client.core import GaugeMetricFamily, Metric

from eventstore.events import Cursor
from eventstore.reading import TABLE, LogReader

log = logging.getLogger(__name__)


class CheckpointCollector:
    """A prometheus_client collector of the named consumer groups' checkpoints.

    ``close_connection``: close this thread's database connection after each
    scrape. For scrapes outside a Django request (prometheus_client's own
    server runs each on a fresh thread, whose connection nothing else would
    close, and on PostgreSQL would never return to the pool).
    """

    def __init__(self, groups: Sequence[str] | Callable[[], Sequence[str]], *, close_connection: bool = False) -> None:
        """``groups``: the names, or what gives them at each scrape (eventstore.groups.names)."""
        self.groups = groups
        self.close_connection = close_connection

    def describe(self) -> Iterator[Metric]:
        # Declared, so registering this collector does not query the database.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        position, lag, running, stuck, parked, head = families
        try:
            now = dt.datetime.now(dt.timezone.utc)
            reader = LogReader()
            names = self.groups() if callable(self.groups) else self.groups
            for name in names:
                with connection.cursor() as c:
                    c.execute(
                        "SELECT tx, position, owner, lease_until, error_position, "
                        "(SELECT count(*) FROM parley_parked WHERE consumer_group = %s AND replayed_at IS NULL) "
                        "FROM parley_checkpoints WHERE name = %s", [name, name]
                    )
                    row = c.fetchone()
                cursor = Cursor(int(row[0]), int(row[1])) if row else Cursor.start()
                until = _aware(row[3]) if row else None
                position.add_metric([name], cursor.position)
                lag.add_metric([name], reader.count_after(cursor))
                running.add_metric([name], 1 if row and row[2] and until is not None and until > now else 0)
                stuck.add_metric([name], int(row[4]) if row and row[4] is not None else 0)
                parked.add_metric([name], int(row[5]) if row else 0)
            with connection.cursor() as c:
                c.execute(f"SELECT max(position) FROM {TABLE}")
                head.add_metric([], int(c.fetchone()[0] or 0))
        except Exception:
            # A scrape reports what it can: the process's own metrics still
            # go out, and the consumers' series are absent for this scrape.
            log.warning("could not read the consumers' checkpoints for /metrics", exc_info=True)
            families = self._families()
        finally:
            if self.close_connection:
                connection.close()
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "parley_consumer_position", "Position of the last event a consumer group has processed.",
                labels=["consumer"],
            ),
            GaugeMetricFamily(
                "parley_consumer_lag_events",
                "Readable events in the log a consumer group has not processed yet.",
                labels=["consumer"],
            ),
            GaugeMetricFamily(
                "parley_consumer_running",
                "1 while an instance holds the consumer group's lease (it is being processed), else 0.",
                labels=["consumer"],
            ),
            GaugeMetricFamily(
                "parley_consumer_stuck_position",
                "Position of the event a consumer group is stuck on (its code cannot process it: see "
                "readmodels_status, park_event), or 0.",
                labels=["consumer"],
            ),
            GaugeMetricFamily(
                "parley_consumer_parked_events",
                "Events parked for a consumer group (skipped by an operator) and not replayed yet.",
                labels=["consumer"],
            ),
            GaugeMetricFamily("parley_log_position", "Position of the last event appended to the log."),
        )


def _aware(value: object) -> dt.datetime | None:
    """A lease time as read (SQLite gives naive UTC text, PostgreSQL an aware datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
