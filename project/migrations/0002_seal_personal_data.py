"""Seal the personal fields of events written before per-customer keys existed (docs/privacy.md).

Which fields are personal, and whose, is the contexts' own declaration
(``@event(..., subject=..., personal=...)``), read from the registry, so
this migration lives with the composition root. It needs ``PARLEY_KEYS``.
Rows keep their ids, positions and order; only their payloads change.
"""

from django.db import migrations


def seal(apps, schema_editor):
    import chat.events  # noqa: F401  (registers the events and their personal fields)
    import conversations.events  # noqa: F401
    import customers.events  # noqa: F401
    from eventstore.keys import seal_stored

    seal_stored(schema_editor.connection.alias)


class Migration(migrations.Migration):

    dependencies = [("project", "0001_fill_event_shards"), ("eventstore", "0008_subject_keys")]

    operations = [migrations.RunPython(seal, migrations.RunPython.noop)]
