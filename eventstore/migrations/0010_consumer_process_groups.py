"""Which consumer groups each process that shares partitions runs (``runworkers --groups``)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0009_read_barrier_skips_deriving_groups'),
    ]

    operations = [
        migrations.AddField(
            model_name='consumerprocess',
            name='groups',
            field=models.CharField(default='', max_length=200),
        ),
    ]
