"""Push deliveries and emails become queues of workers.jobs: a lease holder on
each row (a database default, so the previous release's inserts still work),
when an email was finished (filled in for the ones already finished), and
the indexes a claim reads pending rows and a device's lane through."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0002_emailunread_emailoutbox'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='pushdelivery',
            name='push_delivery_pending_due',
        ),
        migrations.AddField(
            model_name='emailoutbox',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='emailoutbox',
            name='lease_owner',
            field=models.CharField(blank=True, db_default='', default='', max_length=100),
        ),
        migrations.AddField(
            model_name='pushdelivery',
            name='lease_owner',
            field=models.CharField(blank=True, db_default='', default='', max_length=100),
        ),
        migrations.RunSQL(
            "UPDATE parley_email_outbox SET finished_at = COALESCE(sent_at, next_attempt_at) WHERE state <> 'pending'",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name='emailoutbox',
            index=models.Index(fields=['state', 'finished_at'], name='parley_email_outbox_finished'),
        ),
        migrations.AddIndex(
            model_name='pushdelivery',
            index=models.Index(condition=models.Q(('state', 'pending')), fields=['due_at', 'id'], name='push_delivery_pending_order'),
        ),
        migrations.AddIndex(
            model_name='pushdelivery',
            index=models.Index(condition=models.Q(('state', 'pending')), fields=['subscription', 'id'], name='push_delivery_lane_order'),
        ),
    ]
