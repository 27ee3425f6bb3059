"""Each event keeps the shard of its partition key (eventstore.events.shard_of)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0005_stuck_and_parked_events'),
    ]

    operations = [
        migrations.AddField(
            model_name='storedevent',
            name='shard',
            field=models.SmallIntegerField(null=True),
        ),
    ]
