"""The read models' text keys lose the second index Django gives them on PostgreSQL.

Django adds a ``varchar_pattern_ops`` index beside the primary key of every
``CharField`` key, for ``LIKE 'prefix%'`` lookups. Nothing looks these keys
up by a prefix (each is read and written whole, through the primary key),
and the pipeline wrote every one of them with every row: a search entry,
a report fact, a report count, an agent's unread mark, a label. Dropped, a
backlog costs PostgreSQL less (docs/benchmarks.md, the pipeline).
"""

from django.db import migrations

#: The read models whose primary key is a CharField named ``key``.
KEYED = ["agentunread", "conversationlabel", "reportcount", "reportfact", "searchentry"]


def _pattern_index(schema_editor, model) -> str:
    field = model._meta.get_field("key")
    return schema_editor._create_index_name(model._meta.db_table, [field.column], suffix="_like")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL has them
    for name in KEYED:
        model = apps.get_model("readmodels", name)
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(_pattern_index(schema_editor, model))}")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in KEYED:
        model = apps.get_model("readmodels", name)
        schema_editor.execute(schema_editor._create_like_index_sql(model, model._meta.get_field("key")))


class Migration(migrations.Migration):

    dependencies = [
        ('readmodels', '0012_report_facts_by_kind'),
    ]

    operations = [migrations.RunPython(drop, create)]
