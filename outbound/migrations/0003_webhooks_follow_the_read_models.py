"""Webhooks become a consumer group that follows the read models. It starts
where the pipeline is, which queued every delivery up to there."""

import datetime as dt

from django.db import migrations


def start_where_the_pipeline_is(apps, schema_editor):
    Checkpoint = apps.get_model("eventstore", "Checkpoint")
    pipeline = Checkpoint.objects.filter(name="pipeline").first()
    if pipeline is not None:
        Checkpoint.objects.get_or_create(name="webhooks", defaults={
            "tx": pipeline.tx, "position": pipeline.position, "updated_at": dt.datetime.now(dt.timezone.utc)})


class Migration(migrations.Migration):

    dependencies = [
        ("outbound", "0002_one_queue"),
        ("eventstore", "0005_stuck_and_parked_events"),
    ]

    operations = [
        migrations.RunPython(start_where_the_pipeline_is, migrations.RunPython.noop),
    ]
