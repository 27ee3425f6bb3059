"""The email fallback: one email per unread streak, through the real process
manager, timers and outbox, with Django's in-memory email backend.

Clocks are injected: the process manager runs and the timers fire when
the test says (``work(at)``), never on a sleep.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from notifications.fallback import EMAIL_FALLBACK_TIMER
from notifications.models import EmailOutbox, EmailStreak
from readmodels import selectors
from tests.support.mailflow import DELAY, agent_says, customer_reads, later, now, parts, work
from workers import timers
from workers.models import Timer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fallback_on(settings):
    settings.PARLEY_EMAIL_FALLBACK_SECONDS = DELAY.total_seconds()
    settings.PARLEY_PUBLIC_URL = "https://support.example.com"
    settings.DEFAULT_FROM_EMAIL = "Support <support@example.com>"


def test_two_unread_messages_make_one_email_with_both(customer, agent, mailoutbox):
    agent_says(agent, customer, "First answer")
    agent_says(agent, customer, "Second answer")
    assert work(now()) == 0  # not due yet
    assert work(later()) == 1
    assert work(later()) == 0  # the streak's one email
    [email] = mailoutbox
    assert email.to == ["ada@example.com"]
    body = parts(email)
    assert "First answer" in body["text/plain"] and "Second answer" in body["text/plain"]
    assert "First answer" in body["text/html"] and "Second answer" in body["text/html"]
    assert email.subject == "Support sent you 2 messages"


def test_messages_read_in_time_send_nothing(customer, agent, mailoutbox):
    first, second = agent_says(agent, customer), agent_says(agent, customer)
    work(now())
    customer_reads(customer, first)
    work(now())
    assert [t.state for t in Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER)] == [Timer.PENDING]  # one still unread
    customer_reads(customer, second)
    assert work(later()) == 0
    assert mailoutbox == []
    assert [t.state for t in Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER)] == [Timer.CANCELLED]


def test_a_partly_read_streak_emails_only_what_is_still_unread(customer, agent, mailoutbox):
    first = agent_says(agent, customer, "Already seen")
    agent_says(agent, customer, "Still waiting")
    work(now())
    customer_reads(customer, first)
    assert work(later()) == 1
    text = parts(mailoutbox[0])["text/plain"]
    assert "Still waiting" in text and "Already seen" not in text


def test_a_customer_without_an_email_address_gets_none(make_customer, agent, mailoutbox):
    nomail = make_customer(name="No Mail", email="")
    agent_says(agent, nomail)
    assert work(later()) == 0
    assert mailoutbox == []
    timer = Timer.objects.get(kind=EMAIL_FALLBACK_TIMER)
    assert (timer.state, timer.last_error) == (Timer.FIRED, "refused: no_email_address")


def test_a_new_streak_after_reading_everything_sends_a_second_email(customer, agent, mailoutbox):
    first = agent_says(agent, customer, "One")
    assert work(later()) == 1
    second = agent_says(agent, customer, "Two")  # still the first streak: "One" is unread
    assert work(later()) == 0
    customer_reads(customer, first)
    customer_reads(customer, second)
    work(now())
    agent_says(agent, customer, "Three")
    assert work(later()) == 1
    assert len(mailoutbox) == 2
    assert mailoutbox[0].extra_headers["Message-ID"] != mailoutbox[1].extra_headers["Message-ID"]
    assert "Three" in parts(mailoutbox[1])["text/plain"]


def test_the_fallback_off_schedules_nothing(customer, agent, mailoutbox, settings):
    settings.PARLEY_EMAIL_FALLBACK_SECONDS = 0
    agent_says(agent, customer)
    assert work(later()) == 0
    assert not Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER).exists()


def test_customer_messages_start_no_streak(customer, agent, mailoutbox):
    r = customer.post("/api/v1/messages", {"message_id": "3f1c2f4e-8d7b-4b8e-9a55-2f0f3c4b5a6d", "body": "Hello"})
    assert r.status_code == 201
    assert work(later()) == 0
    assert not Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER).exists()


def test_html_part_escapes_message_text(customer, agent, mailoutbox):
    agent_says(agent, customer, '<script>alert("x")</script> & <b>bold</b>')
    work(later())
    body = parts(mailoutbox[0])
    assert "<script>" not in body["text/html"] and "<b>" not in body["text/html"]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in body["text/html"]
    assert '<script>alert("x")</script> & <b>bold</b>' in body["text/plain"]  # plain text is shown as it is


def test_headers_name_the_one_click_unsubscribe_and_a_stable_message_id(customer, agent, mailoutbox):
    agent_says(agent, customer)
    work(later())
    headers = mailoutbox[0].extra_headers
    assert re.fullmatch(r"<https://support\.example\.com/email/unsubscribe/[^>]+/>", headers["List-Unsubscribe"])
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"].endswith("@example.com>")
    assert headers["Message-ID"] == EmailOutbox.objects.get().headers["Message-ID"]


def test_a_timer_fired_twice_queues_one_email(customer, agent, mailoutbox):
    agent_says(agent, customer)
    work(now())
    [timer] = timers.pending()
    due = timers.Due(timer.key, timer.kind, timer.subject, timer.due_at, dict(timer.payload))
    from notifications.fallback_email import fallback_due

    fallback_due(due, later())
    fallback_due(due, later())
    assert EmailOutbox.objects.count() == 1


def test_a_send_that_failed_is_retried_and_a_crash_after_sending_resends_the_same_message_id(
    customer, agent, mailoutbox, settings
):
    from notifications import mailer

    agent_says(agent, customer)
    at = later()
    settings.EMAIL_BACKEND = "tests.support.mailbackends.RefusingBackend"
    assert work(at) == 0
    row = EmailOutbox.objects.get()
    assert (row.state, row.attempts) == (EmailOutbox.PENDING, 1) and "refused" in row.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert mailer.send_due(now=at) == 0  # backing off
    # A worker claims the row, sends, and dies before marking it sent.
    [claimed] = mailer.claim(row.next_attempt_at, owner="a worker that dies")
    mailer.as_email(claimed).send()
    assert mailer.send_due(now=row.next_attempt_at) == 0  # its lease holds
    assert mailer.send_due(now=row.next_attempt_at + mailer.LEASE) == 1  # the lease ran out: sent again
    assert len(mailoutbox) == 2
    assert mailoutbox[0].extra_headers["Message-ID"] == mailoutbox[1].extra_headers["Message-ID"]
    assert EmailOutbox.objects.get().state == EmailOutbox.SENT


def test_history_older_than_a_day_is_not_emailed(customer, agent, mailoutbox):
    from eventstore.runner import ConsumerRunner
    from notifications.fallback import EmailFallbackProcessManager
    from project.bootstrap import pipeline

    agent_says(agent, customer)
    pipeline().catch_up()
    far_ahead = later() + dt.timedelta(days=2)
    ConsumerRunner([EmailFallbackProcessManager(clock=lambda: far_ahead)], name="email-fallback").catch_up()
    assert not Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER).exists()


def test_email_recipient_reads_the_directory(customer):
    from project.bootstrap import pipeline

    pipeline().catch_up()
    import uuid

    r = selectors.email_recipient(uuid.UUID(customer.id))
    assert r is not None and (r.email, r.unsubscribed) == ("ada@example.com", False)


def test_a_streak_that_ends_and_a_new_one_in_one_batch_keep_only_the_new_timer(customer, agent, mailoutbox):
    first = agent_says(agent, customer, "Old news")
    customer_reads(customer, first)
    fresh = agent_says(agent, customer, "Fresh news")
    work(now())  # one batch: the first streak starts and ends, the second starts
    states = sorted(t.state for t in Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER))
    assert states == sorted([Timer.CANCELLED, Timer.PENDING])
    [streak] = EmailStreak.objects.all()  # the ended streak's row went before the new one was made
    assert str(streak.message_id) == fresh
    assert work(later()) == 1
    text = parts(mailoutbox[0])["text/plain"]
    assert "Fresh news" in text and "Old news" not in text


def test_streaks_of_several_customers_ending_in_one_batch_all_go(make_customer, agent, mailoutbox):
    customers = [make_customer(email=f"reader{i}@example.com") for i in range(3)]
    said = [agent_says(agent, c, "Read me") for c in customers]
    work(now())
    assert EmailStreak.objects.count() == 3
    for c, mid in zip(customers, said, strict=True):
        customer_reads(c, mid)
    work(now())  # one batch: three reads, each bringing a badge back to 0
    assert EmailStreak.objects.count() == 0
    assert work(later()) == 0


def test_a_conversation_resolved_before_the_email_asks_for_a_rating_in_it(customer, agent, mailoutbox):
    agent_says(agent, customer, "Your refund is on its way")
    r = agent.post(f"/api/v1/conversations/{customer.id}/status", {"status": "resolved"})
    assert r.status_code == 200, r.content
    assert work(later()) == 1
    [email] = mailoutbox
    body = parts(email)
    assert "How did we do? Rate us from 1 to 5 in the conversation:" in body["text/plain"]
    assert "Rate us from 1 to 5</a>" in body["text/html"]


def test_an_open_conversations_email_does_not_ask_for_a_rating(customer, agent, mailoutbox):
    agent_says(agent, customer, "Which order?")
    assert work(later()) == 1
    [email] = mailoutbox
    assert "How did we do" not in parts(email)["text/plain"]


def test_an_away_reply_starts_no_streak_and_the_agents_answer_is_emailed(customer, agent, mailoutbox, settings):
    """The away reply raises the badge, but the streak's one email is for what the team
    wrote: the agent's answer the next morning is emailed, the away reply is not."""
    from tests.integration.test_agent_tools import customer_says, settle
    from tests.integration.test_business_hours import close_around_today

    close_around_today(settings)
    customer_says(customer.id, "Is anyone there?")
    settle()
    assert customer.get("/api/v1/badge").json()["unread"] == 1  # the away reply, unread
    assert work(later()) == 0
    assert not Timer.objects.filter(kind=EMAIL_FALLBACK_TIMER).exists()
    agent_says(agent, customer, "Good morning, here is your answer")
    assert work(later()) == 1
    [email] = mailoutbox
    text = parts(email)["text/plain"]
    assert "here is your answer" in text and "away" not in text
    assert email.subject == "Support answered you"
    agent_says(agent, customer, "And one more thing")  # the same streak: nothing more
    assert work(later()) == 0


def test_a_streak_in_progress_when_streaks_began_to_be_kept_is_kept(customer, agent, mailoutbox):
    """The migration that keeps streaks finds the ones running: a timer whose message is still unread."""
    import importlib

    from django.apps import apps

    from notifications.models import EmailStreak

    read = agent_says(agent, customer, "Read in time")
    work(now())
    customer_reads(customer, read)
    unread = agent_says(agent, customer, "Still unread")
    work(now())
    [streak] = EmailStreak.objects.all()
    EmailStreak.objects.all().delete()  # as before the migration: timers only
    migration = importlib.import_module("notifications.migrations.0005_email_streaks")
    migration.streaks_in_progress(apps, None)
    [kept] = EmailStreak.objects.all()
    assert (str(kept.customer_id), str(kept.message_id)) == (customer.id, unread) == (customer.id, str(streak.message_id))
    agent_says(agent, customer, "A third")
    assert work(later()) == 1  # one email for the streak, not one more for the third message
