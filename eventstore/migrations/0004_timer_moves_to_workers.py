"""The Timer model now belongs to the workers app (its migration 0001 takes it
over in the state); the table, parley_timers, stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('eventstore', '0003_timer'),
        ('workers', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Timer')],
        ),
    ]
