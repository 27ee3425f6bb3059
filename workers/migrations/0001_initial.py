"""The timers table moves from eventstore to workers: state only (the table,
parley_timers, was made by eventstore 0003 and stays as it is)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('eventstore', '0003_timer'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Timer',
                    fields=[
                        ('key', models.CharField(max_length=200, primary_key=True, serialize=False)),
                        ('kind', models.CharField(max_length=100)),
                        ('subject', models.CharField(max_length=200)),
                        ('due_at', models.DateTimeField()),
                        ('payload', models.JSONField(default=dict)),
                        ('state', models.CharField(default='pending', max_length=10)),
                        ('created_at', models.DateTimeField()),
                        ('done_at', models.DateTimeField(blank=True, null=True)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.TextField(blank=True, default='')),
                    ],
                    options={
                        'db_table': 'parley_timers',
                        'indexes': [models.Index(fields=['state', 'due_at'], name='parley_timers_due'), models.Index(fields=['subject', 'kind'], name='parley_timers_subject')],
                    },
                ),
            ],
        ),
    ]
