"""The directory learns how each customer came (the visitor form, the API,
an inbound webhook); existing rows are filled from the log's registrations."""

import json

from django.db import migrations, models


def _origin(actor: str) -> str:
    # As readmodels.projections.registration_origin, frozen here for this migration.
    if actor == "visitor":
        return "form"
    if actor == "integration":
        return "api"
    if actor.startswith("inbound:"):
        return "webhook"
    return ""


def fill_origins(apps, schema_editor):
    StoredEvent = apps.get_model("eventstore", "StoredEvent")
    DirectoryEntry = apps.get_model("readmodels", "DirectoryEntry")
    registrations = StoredEvent.objects.filter(event_type="CustomerRegistered").values_list("data", "metadata")
    for data, metadata in registrations.iterator(chunk_size=2000):
        origin = _origin(str(json.loads(metadata).get("actor", "")))
        if origin:
            DirectoryEntry.objects.filter(customer_id=json.loads(data)["customer_id"]).update(origin=origin)


class Migration(migrations.Migration):

    dependencies = [
        ("readmodels", "0001_initial"),
        ("eventstore", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="directoryentry",
            name="origin",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(fill_origins, migrations.RunPython.noop),
    ]
