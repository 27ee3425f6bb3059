"""Timers finished long ago are purged (workers.timers)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='timer',
            index=models.Index(fields=['state', 'done_at'], name='parley_timers_done'),
        ),
    ]
