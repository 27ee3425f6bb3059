"""The rows as of each event are kept as JSON text, not ``jsonb``.

Nothing queries inside them: the pipeline writes each row once, and the
groups that follow it and the web processes read it whole. As ``jsonb``,
PostgreSQL parsed every row it was given (keys sorted, tree built), and
the pipeline sent them inside its JSON document of rows, to be lexed
again. As text they go as a binary array and are stored as written
(eventstore.tables.JSONText; docs/benchmarks.md, the pipeline). The rows
already stored are converted in place, both ways.
"""

from django.db import migrations

import eventstore.tables


class Migration(migrations.Migration):
    dependencies = [
        ("readmodels", "0013_no_pattern_indexes_on_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name="eventrows",
            name="rows",
            field=eventstore.tables.JSONText(),
        ),
    ]
