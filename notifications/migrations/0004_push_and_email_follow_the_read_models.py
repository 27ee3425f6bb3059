"""Push and the email fallback become consumer groups that follow the read
models (they read the rows the pipeline leaves as of each event). Push
starts where the pipeline is, which queued every push up to there; the
email fallback, a group already, goes no further back than the pipeline
(there are no rows as of older events). Its own count of unread messages
(EmailUnread) goes: it reads the badge now."""

import datetime as dt

from django.db import migrations


def start_behind_the_pipeline(apps, schema_editor):
    Checkpoint = apps.get_model("eventstore", "Checkpoint")
    pipeline = Checkpoint.objects.filter(name="pipeline").first()
    if pipeline is None:
        return  # a new database: every group starts at the beginning of the log
    now = dt.datetime.now(dt.timezone.utc)
    Checkpoint.objects.get_or_create(name="push", defaults={"tx": pipeline.tx, "position": pipeline.position,
                                                             "updated_at": now})
    fallback = Checkpoint.objects.filter(name="email-fallback").first()
    if fallback is None:
        Checkpoint.objects.create(name="email-fallback", tx=pipeline.tx, position=pipeline.position, updated_at=now)
    elif (fallback.tx, fallback.position) < (pipeline.tx, pipeline.position):
        fallback.tx, fallback.position = pipeline.tx, pipeline.position
        fallback.save(update_fields=["tx", "position"])


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0003_one_queue"),
        ("eventstore", "0005_stuck_and_parked_events"),
    ]

    operations = [
        migrations.DeleteModel(name="EmailUnread"),
        migrations.RunPython(start_behind_the_pipeline, migrations.RunPython.noop),
    ]
