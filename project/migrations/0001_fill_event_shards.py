"""Give every event written before shards existed the shard of its partition key.

A partitioned consumer group reads the shards of its partition
(``PARLEY_PIPELINE_PARTITIONS``): old events must have theirs too. The field
each event type is partitioned by is the contexts' own declaration
(``@event(..., partitioned_by=...)``), read from the registry, so this
migration lives with the composition root, which may import every context.
PostgreSQL computes the shard in one statement per type (the same MD5 as
``eventstore.events.shard_of``); SQLite row by row.
"""

import json

from django.db import migrations

SHARD_SQL = (
    "UPDATE parley_events SET shard = ('x' || substr(md5(data::jsonb->>%s), 1, 4))::bit(16)::int %% {shards} "
    "WHERE event_type = %s AND shard IS NULL"
)


def fill(apps, schema_editor):
    import chat.events  # noqa: F401  (registers the events and their partition keys)
    import conversations.events  # noqa: F401
    import customers.events  # noqa: F401
    from eventstore.events import SHARDS, partition_keys, shard_of

    connection = schema_editor.connection
    with connection.cursor() as c:
        if connection.vendor == "postgresql":
            for event_type, field in partition_keys().items():
                c.execute(SHARD_SQL.format(shards=SHARDS), [field, event_type])
            c.execute("UPDATE parley_events SET shard = 0 WHERE shard IS NULL")
            return
        c.execute("SELECT position, event_type, data FROM parley_events WHERE shard IS NULL")
        keys = partition_keys()
        updates = []
        for position, event_type, data in c.fetchall():
            key = keys.get(event_type)
            value = json.loads(data).get(key) if key else None
            updates.append((shard_of(value) if value is not None else 0, position))
        c.executemany("UPDATE parley_events SET shard = %s WHERE position = %s", updates)


class Migration(migrations.Migration):

    dependencies = [("eventstore", "0006_event_shards")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
