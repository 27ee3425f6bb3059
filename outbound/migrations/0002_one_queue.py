"""Webhook deliveries as a queue of workers.jobs: claimed in due order, purged when finished long ago."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('outbound', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(condition=models.Q(('state', 'pending')), fields=['due_at', 'id'], name='webhook_delivery_pending_due'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['state', 'finished_at'], name='webhook_delivery_finished'),
        ),
    ]
