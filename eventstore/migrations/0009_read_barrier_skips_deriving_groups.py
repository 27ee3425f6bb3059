"""The read barrier leaves out the batches of consumer groups that append nothing.

Every consumer group's batch locks its checkpoint row, which gives its
transaction an id; the barrier (migration 0002) kept every such id, so a
batch of a group that only derives rows (the read models, the process
managers that queue pushes, webhooks and emails) held back every reader of
the log for as long as it ran, the read models included: committed events
waited behind a transaction that could never add one before them, and the
pipeline retried with a growing pause. Such batches now mark themselves
(application_name ``parley:derived``, eventstore.store.mark_replay_transaction)
and are left out like replays. Before this migration runs the mark is
ignored: readers only wait longer, as before.
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
          AND (datname IS DISTINCT FROM current_database()
               OR application_name IN ('parley:replay', 'parley:derived'))
    );
    RETURN COALESCE(oldest, pg_snapshot_xmax(snap)::text::bigint);
END
$$
"""


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def restore(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        import importlib

        schema_editor.execute(importlib.import_module("eventstore.migrations.0002_read_barrier_function").CREATE)


class Migration(migrations.Migration):
    dependencies = [("eventstore", "0008_subject_keys")]
    operations = [migrations.RunPython(create, restore)]
