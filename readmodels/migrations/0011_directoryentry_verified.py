"""Which addresses Parley may email: a visitor's must be proved first (EmailVerified).

Existing rows: an address the host application (or anyone but a visitor)
gave is trusted as before; a visitor's is not, until proved. A rebuild of
the read models computes the same from the log (readmodels.folds.directory).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('readmodels', '0010_reports'),
    ]

    operations = [
        migrations.AddField(
            model_name='directoryentry',
            name='verified',
            field=models.TextField(blank=True, default=''),
        ),
        migrations.RunSQL(
            "UPDATE readmodels_directoryentry SET verified = lower(trim(email)) WHERE origin <> 'form' AND email <> ''",
            migrations.RunSQL.noop,
        ),
    ]
