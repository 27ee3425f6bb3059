"""A consumer group says which event it is stuck on; operators can park an event for one group."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0004_timer_moves_to_workers'),
    ]

    operations = [
        migrations.AddField(
            model_name='checkpoint',
            name='error_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='error_detail',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='error_event_id',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='error_member',
            field=models.CharField(blank=True, db_default='', default='', max_length=100),
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='error_position',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='Parked',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('consumer_group', models.CharField(max_length=100)),
                ('event_id', models.UUIDField()),
                ('position', models.BigIntegerField()),
                ('tx', models.BigIntegerField()),
                ('event_type', models.CharField(max_length=100)),
                ('detail', models.TextField(blank=True, default='')),
                ('parked_at', models.DateTimeField()),
                ('parked_by', models.CharField(blank=True, default='', max_length=200)),
                ('replayed_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'db_table': 'parley_parked',
                'constraints': [models.UniqueConstraint(fields=('consumer_group', 'event_id'), name='parley_parked_once')],
            },
        ),
    ]
