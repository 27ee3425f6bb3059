"""Read-model tables. Each belongs to exactly one consumer (see projections),
is written only by it, and carries the (tx, position) of the last event
that changed it so reads can be resumed in log order."""

from __future__ import annotations

from django.db import models

from eventstore.tables import JSONText
from readmodels.fulltext import FullTextIndex


class DirectoryEntry(models.Model):
    """Customer contact details as the customers context published them (consumer: directory)."""

    customer_id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)
    email = models.CharField(max_length=254, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    external_id = models.CharField(max_length=200, null=True, blank=True)
    #: How the customer came to Parley (see readmodels.projections.registration_origin); "" when unknown.
    origin = models.CharField(max_length=16, blank=True, default="")
    #: Addresses that used an email's unsubscribe link (lower case, one per line).
    unsubscribed = models.TextField(blank=True, default="")
    #: Addresses Parley may send conversation emails to (lower case, one per line): one the host
    #: application gave, or one a visitor typed and then proved (EmailVerified).
    verified = models.TextField(blank=True, default="")
    tx = models.BigIntegerField()
    position = models.BigIntegerField()


class TimelineMessage(models.Model):
    """One row per message with its current body and read state (consumer: timeline)."""

    message_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
    sender_kind = models.CharField(max_length=10)
    sender_id = models.CharField(max_length=64)
    sender_name = models.CharField(max_length=200, blank=True, default="")
    body = models.TextField()
    sent_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    #: The files sent with it, as MessageSent describes them (readmodels.present.attachment_rows).
    attachments = models.JSONField(default=list)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["customer_id", "tx", "position"], name="timeline_changes"),
            models.Index(fields=["customer_id", "sent_at"], name="timeline_by_time"),
        ]


class Conversation(models.Model):
    """One row per customer who has written or been written to (consumer: conversations)."""

    customer_id = models.UUIDField(primary_key=True)
    #: None while the conversation has workflow events but no message yet.
    last_message = models.JSONField(null=True)
    unread_for_agents = models.PositiveIntegerField(default=0)
    awaiting_reply = models.BooleanField(default=False)
    last_activity_at = models.DateTimeField()
    # -- the workflow (conversations.events)
    status = models.CharField(max_length=10, default="open")
    assignee_id = models.CharField(max_length=64, null=True, blank=True)
    assignee_name = models.CharField(max_length=200, blank=True, default="")
    snoozed_until = models.DateTimeField(null=True, blank=True)
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    sla_breached = models.BooleanField(default=False)
    #: The conversation's labels, sorted (ConversationLabel holds them again, to filter by).
    labels = models.JSONField(default=list)
    #: The customer's last rating: {"score", "comment", "rated_at"}, or None.
    rating = models.JSONField(null=True, default=None)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["-last_activity_at"], name="conversations_recent"),
            models.Index(fields=["assignee_id", "status"], name="conversations_by_assignee"),
        ]


class ConversationLabel(models.Model):
    """One label of one conversation (projection: labels): what ``?label=`` finds.

    A row per (customer, label) rather than a search in Conversation's JSON,
    so one index, the same on PostgreSQL and SQLite, finds a label's
    conversations however far down the list they are.
    """

    #: "<customer id>:<label>"
    key = models.CharField(primary_key=True, max_length=80)
    customer_id = models.UUIDField()
    label = models.CharField(max_length=32)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["label", "customer_id"], name="labels_by_label")]


class AgentUnread(models.Model):
    """A conversation one agent marked unread (projection: agent_unread): it
    belongs to that agent and that customer, and counts for nobody else."""

    #: "<agent id>:<customer id>"
    key = models.CharField(primary_key=True, max_length=110)
    agent_id = models.CharField(max_length=64)
    customer_id = models.UUIDField()
    marked_at = models.DateTimeField()
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["agent_id", "customer_id"], name="agent_unread_by_agent")]


class Unread(models.Model):
    """A message its reader has not marked read yet (projection: unread): an
    agent's message unread by the customer (``reader`` "customer": what the
    badge counts), or a customer's message no agent has read ("agents").

    One set for both sides, and a count moves only when a row is really
    added or deleted here, so a message is counted once and lowered once.
    """

    message_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
    reader = models.CharField(max_length=10)

    class Meta:
        indexes = [models.Index(fields=["customer_id", "reader"], name="unread_by_customer")]


class Badge(models.Model):
    """Unread agent messages per customer (projection: badge, from the unread set)."""

    customer_id = models.UUIDField(primary_key=True)
    unread = models.PositiveIntegerField(default=0)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()


class TimelineNote(models.Model):
    """A private note in a conversation, for agents only (consumer: notes).

    Kept apart from TimelineMessage on purpose: no read a customer can make
    touches this table.
    """

    note_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
    author_id = models.CharField(max_length=64)
    author_name = models.CharField(max_length=200, blank=True, default="")
    body = models.TextField()
    created_at = models.DateTimeField()
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["customer_id", "tx", "position"], name="notes_changes")]


class SearchEntry(models.Model):
    """One searchable text (consumer: search): a message's current body, or
    a customer's name and email address.

    ``text`` is kept in the index's form (readmodels.fulltext.indexable);
    the answers show messages from the timeline and highlights made from
    it. Each event changes at most one row, so ``position`` is unique: on
    SQLite it is the row's id in the FTS5 table (readmodels_search_fts),
    which triggers keep in step with this table (migration 0005). A later
    migration that makes SQLite copy this table (most AlterFields) drops
    those triggers with the old table and must create them again.
    """

    #: "message:<message id>" or "customer:<customer id>": two kinds of row,
    #: and a client-chosen message id can never name a customer's row.
    key = models.CharField(primary_key=True, max_length=48)
    kind = models.CharField(max_length=10)
    customer_id = models.UUIDField()
    message_id = models.UUIDField(null=True, blank=True)
    text = models.TextField()
    tx = models.BigIntegerField()
    position = models.BigIntegerField(unique=True)

    class Meta:
        indexes = [
            FullTextIndex(fields=["text"], name="search_text"),
            models.Index(fields=["customer_id", "kind"], name="search_by_customer"),
        ]


class EventRows(models.Model):
    """The read-model rows one event left, as of that event, as the API shows them.

    Written by the pipeline with the read models (readmodels.asof), one row
    per event that anything downstream reacts to: the message, the
    conversation, the customer, the note and the badge right after that
    event. The process managers that send (push, webhooks, email) run in
    consumer groups of their own, behind the pipeline; they read these rows
    for the events they handle and never fold the read models again. Live
    frames are built from them too.

    Not a read model to query and not rebuilt: rows are deleted once every
    group that reads them has passed them (and a short while has gone by, for
    web processes that fill gaps in their live frames from the log).
    """

    position = models.BigIntegerField(primary_key=True)
    tx = models.BigIntegerField()
    customer_id = models.UUIDField()
    #: The event's shard (a partitioned pipeline prunes its own: eventstore.partitions).
    shard = models.SmallIntegerField(default=0)
    #: {"message"?, "conversation"?, "customer"?, "note"?, "badge"?: {"unread", "moved"}},
    #: as text: written and read whole, never queried inside (eventstore.tables.JSONText).
    rows = JSONText()
    written_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tx", "position"], name="event_rows_order"),
            models.Index(fields=["customer_id"], name="event_rows_customer"),
        ]


class ReportFact(models.Model):
    """One fact a report counts or measures (projection: reports).

    Counted facts (a conversation started or resolved, a customer's or an
    agent's message, a first response past its target) are one row per
    event, keyed by its position, with ``value`` 1. Measured ones (a first
    response's wait, a resolution's time, in business seconds; a rating's
    score) are keyed by what they measure, so a later fact of the same thing
    (a rating replaced within its resolved period) replaces the row. A
    report adds up a range of days (readmodels.reports). Every row belongs
    to one customer; ``day`` is the local date in PARLEY_TIME_ZONE;
    ``agent_id`` "" is nobody.
    """

    key = models.CharField(primary_key=True, max_length=120)
    customer_id = models.UUIDField()
    kind = models.CharField(max_length=20)
    day = models.DateField()
    agent_id = models.CharField(max_length=64, blank=True, default="")
    value = models.FloatField(default=1.0)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [
            # Covers the reports' counts: an index-only scan of a range of days.
            models.Index(fields=["day", "kind", "agent_id"], name="report_facts_by_day"),
            models.Index(fields=["agent_id", "day"], name="report_facts_by_agent"),
            # The summary's measured figures: an index-only scan in the order it groups by (kind,
            # then agent), so the percentiles need no sort of the range's facts first.
            models.Index(fields=["kind", "agent_id", "day", "value"], name="report_facts_by_kind"),
        ]

class ReportCount(models.Model):
    """How many of one kind of fact one customer's conversation had on one day, for one agent
    (projection: reports): the frequent facts (messages, starts, resolutions), counted where they
    happen so that a report adds up a row per conversation and day rather than one per message."""

    #: "<kind>:<customer id>:<day>:<agent id>"
    key = models.CharField(primary_key=True, max_length=140)
    customer_id = models.UUIDField()
    kind = models.CharField(max_length=20)
    day = models.DateField()
    agent_id = models.CharField(max_length=64, blank=True, default="")
    count = models.PositiveIntegerField(default=0)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day", "kind", "agent_id", "count"], name="report_counts_by_day")]


class ReportConversation(models.Model):
    """What the reports fold remembers of one conversation between events (projection: reports)."""

    customer_id = models.UUIDField(primary_key=True)
    #: When the current unresolved stretch started (a customer's message), or None.
    open_since = models.DateTimeField(null=True, blank=True)
    #: When the current waiting period started, or None.
    waiting_since = models.DateTimeField(null=True, blank=True)
    assignee_id = models.CharField(max_length=64, blank=True, default="")
    #: How many times it was resolved (a rating names its resolved period by this number).
    resolutions = models.PositiveIntegerField(default=0)
    tx = models.BigIntegerField()
    position = models.BigIntegerField()
