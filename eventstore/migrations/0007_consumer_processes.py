"""Processes that share the partitions of the consumer groups say they are alive."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0006_event_shards'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConsumerProcess',
            fields=[
                ('owner', models.CharField(max_length=100, primary_key=True, serialize=False)),
                ('started_at', models.DateTimeField()),
                ('seen_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'parley_consumer_processes',
            },
        ),
    ]
