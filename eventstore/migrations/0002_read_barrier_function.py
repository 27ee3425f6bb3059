"""The read barrier as a PostgreSQL function (see eventstore/reading.py).

The barrier is a query over the snapshot and pg_stat_activity that took
longer to plan than to run; as a plpgsql function its plan is made once per
connection. STABLE: it sees the calling statement's snapshot, so the
barrier and the rows it guards come from the same snapshot.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION parley_read_barrier() RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    snap pg_snapshot := pg_current_snapshot();
    oldest bigint;
BEGIN
    SELECT min(inflight.x) INTO oldest
    FROM (
        SELECT xip::text::bigint AS x FROM pg_snapshot_xip(snap) AS xip
        UNION ALL SELECT pg_current_xact_id_if_assigned()::text::bigint
    ) AS inflight
    WHERE inflight.x IS NOT NULL AND inflight.x NOT IN (
        SELECT backend_xid::text::bigint FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
          AND (datname IS DISTINCT FROM current_database() OR application_name = 'parley:replay')
    );
    RETURN COALESCE(oldest, pg_snapshot_xmax(snap)::text::bigint);
END
$$
"""


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS parley_read_barrier()")


class Migration(migrations.Migration):
    dependencies = [("eventstore", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
