"""One unread set for both sides (Unread, from BadgeUnread and AgentUnread,
whose rows it takes over), and the read models' rows as of each event
(EventRows) for the groups that follow the pipeline. The badge's history
(BadgeChange) goes: the badge as of an event is in EventRows now."""

from django.db import migrations, models


def one_unread_set(apps, schema_editor):
    Unread = apps.get_model("readmodels", "Unread")
    for model, reader in (("BadgeUnread", "customer"), ("AgentUnread", "agents")):
        rows = apps.get_model("readmodels", model).objects.values_list("message_id", "customer_id")
        Unread.objects.bulk_create(
            [Unread(message_id=m, customer_id=c, reader=reader) for m, c in rows.iterator()], batch_size=1000,
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('readmodels', '0006_timelinemessage_attachments'),
    ]

    operations = [
        migrations.CreateModel(
            name='EventRows',
            fields=[
                ('position', models.BigIntegerField(primary_key=True, serialize=False)),
                ('tx', models.BigIntegerField()),
                ('customer_id', models.UUIDField()),
                ('shard', models.SmallIntegerField(default=0)),
                ('rows', models.JSONField()),
                ('written_at', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='Unread',
            fields=[
                ('message_id', models.UUIDField(primary_key=True, serialize=False)),
                ('customer_id', models.UUIDField()),
                ('reader', models.CharField(max_length=10)),
            ],
        ),
        migrations.RunPython(one_unread_set, migrations.RunPython.noop),
        migrations.DeleteModel(
            name='AgentUnread',
        ),
        migrations.DeleteModel(
            name='BadgeChange',
        ),
        migrations.DeleteModel(
            name='BadgeUnread',
        ),
        migrations.AddIndex(
            model_name='eventrows',
            index=models.Index(fields=['tx', 'position'], name='event_rows_order'),
        ),
        migrations.AddIndex(
            model_name='eventrows',
            index=models.Index(fields=['customer_id'], name='event_rows_customer'),
        ),
        migrations.AddIndex(
            model_name='unread',
            index=models.Index(fields=['customer_id', 'reader'], name='unread_by_customer'),
        ),
    ]
