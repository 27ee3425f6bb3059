"""The email fallback keeps the streaks it has started (EmailStreak) instead of
taking "the badge went from 0 to 1" for the start of one: an away reply
(a system message) raises the badge too, and must not use up the streak's
one email. A streak in progress is one whose timer (pending or fired) names
a message the customer has still not read."""

import uuid

from django.db import migrations, models

TIMER_KIND = "email.fallback_due"


def streaks_in_progress(apps, schema_editor):
    Timer = apps.get_model("workers", "Timer")
    Unread = apps.get_model("readmodels", "Unread")
    EmailStreak = apps.get_model("notifications", "EmailStreak")
    timers = []
    for key, created_at in (Timer.objects.filter(kind=TIMER_KIND, state__in=("pending", "fired"))
                            .order_by("created_at").values_list("key", "created_at")):
        try:
            _, customer, message = key.split(":")
            timers.append((uuid.UUID(customer), uuid.UUID(message), created_at))
        except ValueError:
            continue
    unread = set(Unread.objects.filter(reader="customer", message_id__in=[m for _, m, _ in timers])
                 .values_list("message_id", flat=True))
    started: dict[uuid.UUID, object] = {}
    for customer_id, message_id, created_at in timers:
        if message_id in unread:
            started.setdefault(customer_id, EmailStreak(customer_id=customer_id, message_id=message_id,
                                                        started_at=created_at))
    EmailStreak.objects.bulk_create(list(started.values()), ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0004_push_and_email_follow_the_read_models"),
        ("readmodels", "0011_directoryentry_verified"),
        ("workers", "0002_timers_done_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="EmailStreak",
            fields=[
                ("customer_id", models.UUIDField(primary_key=True, serialize=False)),
                ("message_id", models.UUIDField()),
                ("started_at", models.DateTimeField()),
            ],
            options={"db_table": "parley_email_streaks"},
        ),
        migrations.RunPython(streaks_in_progress, migrations.RunPython.noop),
    ]
