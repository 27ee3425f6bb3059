"""Each read-model row as a pure fold of events, without a database (readmodels.folds)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chat.events import AttachmentRef, MessageEdited, MessageMarkedAsRead, MessageSent
from conversations.events import (
    ConversationAssigned,
    ConversationLabelsChanged,
    ConversationMarkedRead,
    ConversationMarkedUnread,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    FirstResponseSlaBreached,
    NoteAdded,
)
from customers.events import ContactDetailsChanged, CustomerRegistered, EmailUnsubscribed
from eventstore.events import DomainEvent, Metadata, RecordedEvent
from readmodels import folds
from readmodels.present import present_conversation, present_row

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
CUSTOMER = uuid.UUID(int=1)
PHOTO = AttachmentRef(uuid.UUID(int=99), "photo.png", "image/png", 1234, True)
_positions = iter(range(1, 1_000_000))


def rec(e: DomainEvent, actor: str = "") -> RecordedEvent:
    position = next(_positions)
    return RecordedEvent(position=position, tx=0, stream_id="s", version=1, event_id=uuid.uuid4(), event=e,
                         metadata=Metadata(actor=actor), recorded_at=T0 + dt.timedelta(seconds=position))


def sent(body: str = "hi", *, by: str = "customer", attachments: tuple[AttachmentRef, ...] = (),
         message_id: uuid.UUID | None = None) -> RecordedEvent:
    return rec(MessageSent(message_id or uuid.uuid4(), CUSTOMER, by, "7" if by == "agent" else str(CUSTOMER),
                           "Grace" if by == "agent" else "", body, T0, attachments=attachments))


def edited(message_id: uuid.UUID, body: str) -> RecordedEvent:
    return rec(MessageEdited(message_id, CUSTOMER, body, T0 + dt.timedelta(minutes=1)))


def read(message_id: uuid.UUID, by: str) -> RecordedEvent:
    return rec(MessageMarkedAsRead(message_id, CUSTOMER, by, "7", T0 + dt.timedelta(minutes=2)))


def fold_timeline(*events: RecordedEvent) -> Any:
    row = None
    for r in events:
        row = folds.timeline(row, r)
    return row


# -- the preview rule ----------------------------------------------------------------------


def test_a_preview_is_the_body_or_for_files_alone_the_paperclip_and_their_names():
    assert folds.preview("see attached", [PHOTO]) == "see attached"
    assert folds.preview("", [PHOTO, AttachmentRef(uuid.UUID(int=3), "bill.pdf", "application/pdf", 9, False)]) == (
        "\N{PAPERCLIP} photo.png, bill.pdf")
    assert folds.preview("", [{"name": "photo.png"}]) == "\N{PAPERCLIP} photo.png"  # a stored row
    assert folds.preview("", []) == ""


def test_a_files_only_message_edited_to_text_and_back_previews_its_files_again():
    """The preview rule holds after edits too: it was applied on send only."""
    s = sent("", attachments=(PHOTO,))
    message_id = s.event.message_id  # type: ignore[attr-defined]
    conv = folds.conversation(None, s, message=folds.timeline(None, s), agents_unread=1)
    row = folds.timeline(None, s)
    for body in ("hi", ""):
        e = edited(message_id, body)
        row = folds.timeline(row, e)
        conv = folds.conversation(conv, e, message=row, agents_unread=0)
    assert conv is not None
    assert conv["last_message"]["preview"] == "\N{PAPERCLIP} photo.png"
    assert conv["last_message"]["edited"] is True


def test_a_long_body_is_cut_to_the_preview_length_in_the_conversation():
    s = sent("x" * 500)
    conv = folds.conversation(None, s, message=folds.timeline(None, s), agents_unread=1)
    assert conv is not None and len(conv["last_message"]["preview"]) == folds.PREVIEW_CHARS


# -- timeline ----------------------------------------------------------------------------------


def test_a_timeline_row_holds_the_current_body_the_read_time_and_the_files():
    s = sent("hello", attachments=(PHOTO,))
    m = s.event.message_id  # type: ignore[attr-defined]
    e, r = edited(m, "hello there"), read(m, "agent")
    row = fold_timeline(s, e, r)
    assert (row["body"], row["edited_at"], row["read_at"]) == ("hello there", e.event.edited_at, r.event.read_at)  # type: ignore[attr-defined]
    assert row["attachments"] == [{"attachment_id": str(PHOTO.attachment_id), "name": "photo.png",
                                   "content_type": "image/png", "size": 1234, "has_thumbnail": True}]
    assert row["position"] == r.position  # the last event that changed it


def test_an_edit_or_read_of_an_unknown_message_leaves_no_row():
    m = uuid.uuid4()
    assert folds.timeline(None, edited(m, "x")) is None
    assert folds.timeline(None, read(m, "customer")) is None


def test_a_message_is_folded_from_its_own_stream():
    s = sent("one")
    m = s.event.message_id  # type: ignore[attr-defined]
    assert folds.message_of([s, edited(m, "two")])["body"] == "two"  # type: ignore[index]
    assert folds.message_of([]) is None


# -- the unread set ------------------------------------------------------------------------------


def test_a_message_is_unread_for_the_other_side_until_that_side_reads_it():
    by_customer, by_agent = sent(by="customer"), sent(by="agent")
    assert folds.unread_change(by_customer) == folds.UnreadChange(
        by_customer.event.message_id, CUSTOMER, folds.AGENTS, True)  # type: ignore[attr-defined]
    assert folds.unread_change(by_agent) == folds.UnreadChange(
        by_agent.event.message_id, CUSTOMER, folds.CUSTOMER, True)  # type: ignore[attr-defined]
    closed = folds.unread_change(read(by_agent.event.message_id, "customer"))  # type: ignore[attr-defined]
    assert closed is not None and (closed.reader, closed.opens) == (folds.CUSTOMER, False)
    assert folds.unread_change(rec(NoteAdded(uuid.uuid4(), CUSTOMER, "7", "Grace", "x", T0))) is None


def test_only_an_agents_message_and_a_customers_read_can_move_the_badge():
    agent_message, customer_message = sent(by="agent"), sent(by="customer")
    assert folds.moves_badge(agent_message)
    assert not folds.moves_badge(customer_message)
    assert folds.moves_badge(read(agent_message.event.message_id, "customer"))  # type: ignore[attr-defined]
    assert not folds.moves_badge(read(customer_message.event.message_id, "agent"))  # type: ignore[attr-defined]


def test_a_badge_never_goes_below_zero():
    r = sent(by="agent")
    assert folds.badge(None, CUSTOMER, -1, r)["unread"] == 0
    assert folds.badge({"unread": 2}, CUSTOMER, 1, r) == {"customer_id": CUSTOMER, "unread": 3, "tx": 0,
                                                          "position": r.position}


# -- conversation ------------------------------------------------------------------------------


def test_a_customer_message_starts_a_conversation_that_awaits_a_reply_with_one_unread():
    s = sent("help", by="customer")
    conv = folds.conversation(None, s, message=folds.timeline(None, s), agents_unread=1)
    assert conv is not None
    assert (conv["awaiting_reply"], conv["unread_for_agents"], conv["status"], conv["assignee_id"]) == (
        True, 1, "open", None)
    assert conv["last_message"]["sender"] == {"kind": "customer", "id": str(CUSTOMER), "name": ""}


def test_an_agent_reply_ends_the_wait_and_a_read_by_agents_lowers_their_count():
    s = sent("help", by="customer")
    conv = folds.conversation(None, s, message=folds.timeline(None, s), agents_unread=1)
    reply = sent("on it", by="agent")
    conv = folds.conversation(conv, reply, message=folds.timeline(None, reply), agents_unread=0)
    assert conv is not None and conv["awaiting_reply"] is False
    r = read(s.event.message_id, "agent")  # type: ignore[attr-defined]
    conv = folds.conversation(conv, r, message=None, agents_unread=-1)
    assert conv is not None and conv["unread_for_agents"] == 0 and conv["position"] == r.position


def test_editing_a_message_that_is_not_the_last_leaves_the_preview_alone():
    first, second = sent("first"), sent("second")
    conv = folds.conversation(None, first, message=folds.timeline(None, first), agents_unread=1)
    conv = folds.conversation(conv, second, message=folds.timeline(None, second), agents_unread=1)
    e = edited(first.event.message_id, "first, edited")  # type: ignore[attr-defined]
    conv = folds.conversation(conv, e, message=folds.timeline(folds.timeline(None, first), e), agents_unread=0)
    assert conv is not None and conv["last_message"]["preview"] == "second" and conv["last_message"]["edited"] is False


def test_a_message_event_for_a_conversation_not_started_leaves_no_row():
    m = uuid.uuid4()
    assert folds.conversation(None, edited(m, "x"), message=None, agents_unread=0) is None
    assert folds.conversation(None, read(m, "agent"), message=None, agents_unread=0) is None


def test_the_workflow_events_each_set_their_columns():
    until = T0 + dt.timedelta(hours=3)
    period = uuid.uuid4()
    steps: list[tuple[DomainEvent, dict[str, Any]]] = [
        (ConversationAssigned(CUSTOMER, "7", "Grace", None, "claim", "agent:7", T0), {"assignee_id": "7", "assignee_name": "Grace"}),
        (ConversationStatusChanged(CUSTOMER, "pending", "open", "agent:7", T0), {"status": "pending", "snoozed_until": None}),
        (ConversationSnoozed(CUSTOMER, uuid.uuid4(), until, "pending", "agent:7", T0), {"status": "snoozed", "snoozed_until": until}),
        (ConversationReopened(CUSTOMER, "snooze_expired", "snoozed", uuid.uuid4(), T0), {"status": "open", "snoozed_until": None}),
        (FirstResponseClockStarted(CUSTOMER, period, T0, until), {"first_response_due_at": until, "sla_breached": False}),
        (FirstResponseSlaBreached(CUSTOMER, period, until, until), {"sla_breached": True}),
        (FirstResponseClockStopped(CUSTOMER, period, None, T0), {"first_response_due_at": None, "sla_breached": False}),
        (ConversationAssigned(CUSTOMER, None, "", "7", "assign", "agent:7", T0), {"assignee_id": None}),
        (ConversationLabelsChanged(CUSTOMER, ("vip", "billing"), (), ("billing", "vip"), "agent:7", T0),
         {"labels": ["billing", "vip"]}),
        (ConversationAssigned(CUSTOMER, "8", "Linus", None, "reply", "agent:8", T0), {"assignee_id": "8"}),
    ]
    conv = None
    for e, expected in steps:
        r = rec(e)
        conv = folds.conversation(conv, r, message=None, agents_unread=0)
        assert conv is not None
        assert {k: conv[k] for k in expected} == expected, type(e).__name__
        assert conv["position"] == r.position


def test_a_conversations_labels_are_the_last_change_s_whole_set_and_start_empty():
    conv = folds.conversation(None, sent("hi"), message=folds.timeline(None, sent("hi")), agents_unread=1)
    assert conv is not None and conv["labels"] == []
    conv = folds.conversation(conv, rec(ConversationLabelsChanged(CUSTOMER, ("b", "a"), (), ("a", "b"), "agent:7", T0)),
                              message=None, agents_unread=0)
    conv = folds.conversation(conv, rec(ConversationLabelsChanged(CUSTOMER, (), ("a",), ("b",), "agent:7", T0)),
                              message=None, agents_unread=0)
    assert conv is not None and conv["labels"] == ["b"]
    assert present_conversation(conv, {})["labels"] == ["b"]


def test_a_labels_change_adds_a_row_per_added_label_and_removes_those_taken_off():
    r = rec(ConversationLabelsChanged(CUSTOMER, ("urgent",), ("vip", "billing"), ("urgent",), "agent:7", T0))
    added, removed = folds.labels(r)
    assert added == [{"key": f"{CUSTOMER}:urgent", "customer_id": CUSTOMER, "label": "urgent", "tx": 0,
                      "position": r.position}]
    assert removed == [f"{CUSTOMER}:vip", f"{CUSTOMER}:billing"]


def test_an_agents_mark_is_a_row_of_that_agent_and_customer_until_they_read_it():
    r = rec(ConversationMarkedUnread(CUSTOMER, "7", T0))
    key, row = folds.agent_unread(r)
    assert key == f"7:{CUSTOMER}"
    assert row == {"key": key, "agent_id": "7", "customer_id": CUSTOMER, "marked_at": T0, "tx": 0, "position": r.position}
    assert folds.agent_unread(rec(ConversationMarkedRead(CUSTOMER, "7", T0))) == (key, None)
    assert folds.agent_unread(rec(ConversationMarkedUnread(CUSTOMER, "8", T0)))[0] != key


def test_per_agent_marks_do_not_touch_the_shared_conversation_row():
    from conversations.events import WORKFLOW_EVENT_TYPES

    assert "ConversationMarkedUnread" not in WORKFLOW_EVENT_TYPES and "ConversationMarkedRead" not in WORKFLOW_EVENT_TYPES
    conv = folds.conversation(None, sent("hi"), message=folds.timeline(None, sent("hi")), agents_unread=1)
    assert folds.conversation(conv, rec(ConversationMarkedUnread(CUSTOMER, "7", T0)), message=None,
                              agents_unread=0) == conv


def test_a_workflow_event_can_start_a_conversation_before_any_message():
    r = rec(FirstResponseClockStarted(CUSTOMER, uuid.uuid4(), T0, None))
    conv = folds.conversation(None, r, message=None, agents_unread=0)
    assert conv is not None and conv["last_message"] is None and conv["last_activity_at"] == T0


# -- directory, notes, search --------------------------------------------------------------------


def test_a_directory_row_follows_registration_changes_and_unsubscribes():
    reg = rec(CustomerRegistered(CUSTOMER, "Ada", "ada@example.com", "", "c-1"), actor="integration")
    row = folds.directory(None, reg)
    assert row is not None and (row["name"], row["origin"], row["external_id"]) == ("Ada", "api", "c-1")
    row = folds.directory(row, rec(ContactDetailsChanged(CUSTOMER, "Ada L.", "ada@example.org", "+1")))
    row = folds.directory(row, rec(EmailUnsubscribed(CUSTOMER, "Ada@Example.org")))
    row = folds.directory(row, rec(EmailUnsubscribed(CUSTOMER, "ada@example.org")))
    assert row is not None
    assert (row["name"], row["email"], row["phone"], row["unsubscribed"]) == ("Ada L.", "ada@example.org", "+1", "ada@example.org")
    assert folds.directory(None, rec(ContactDetailsChanged(uuid.uuid4(), "x", "", ""))) is None


def test_the_origin_names_how_a_customer_came():
    assert [folds.registration_origin(a) for a in ("visitor", "integration", "inbound:sms", "agent:1")] == [
        "form", "api", "webhook", ""]


def test_search_indexes_message_bodies_and_customers_but_never_notes():
    s = sent("where is my order")
    assert folds.search(s) == {"key": f"message:{s.event.message_id}", "kind": "message", "customer_id": CUSTOMER,  # type: ignore[attr-defined]
                               "message_id": s.event.message_id, "text": "where is my order", "tx": 0,  # type: ignore[attr-defined]
                               "position": s.position}
    reg = rec(CustomerRegistered(CUSTOMER, "Ada", "ada@example.com", "", None))
    assert folds.search(reg)["text"] == "Ada \u00b7 ada@example.com"  # type: ignore[index]
    assert folds.search(rec(NoteAdded(uuid.uuid4(), CUSTOMER, "7", "Grace", "secret", T0))) is None


# -- the API's objects from the rows -------------------------------------------------------------


def test_a_presented_conversation_names_the_customer_and_their_last_message():
    s = sent("help", by="customer")
    conv = folds.conversation(None, s, message=folds.timeline(None, s), agents_unread=1)
    assert conv is not None
    shown = present_conversation(conv, {str(CUSTOMER): "Ada"})
    assert shown["customer_name"] == "Ada" and shown["last_message"]["sender"]["name"] == "Ada"
    assert shown["last_message"]["sent_at"] == "2026-12-01T09:00:00Z"
    message = present_row(folds.timeline(None, s), {str(CUSTOMER): "Ada"})  # type: ignore[arg-type]
    assert message["sender"] == {"kind": "customer", "id": str(CUSTOMER), "name": "Ada"}


# -- a property: any history folds to the brute-force meaning -----------------------------------

step = st.tuples(st.sampled_from(["send-customer", "send-agent", "edit", "read"]), st.integers(0, 4),
                 st.sampled_from(["", "a", "bb"]))


@given(st.lists(step, max_size=40))
def test_the_unread_set_counts_each_side_exactly_like_a_brute_force_fold(steps):
    """Applying unread changes only when the set changes gives the badge and the
    agents' count a naive recount gives, whatever the history (reads twice, reads of
    one's own message, reads of unknown messages)."""
    ids = [uuid.UUID(int=100 + i) for i in range(5)]
    sender: dict[uuid.UUID, str] = {}
    unread: dict[uuid.UUID, str] = {}  # the set: message -> reader
    counts = {folds.CUSTOMER: 0, folds.AGENTS: 0}
    read_ids: set[uuid.UUID] = set()
    for kind, k, body in steps:
        m = ids[k]
        if kind.startswith("send"):
            if m in sender:
                continue  # one MessageSent per stream
            by = kind.removeprefix("send-")
            sender[m] = by
            r = sent(body or "x", by=by, message_id=m)
        elif kind == "edit":
            r = edited(m, body)
        else:
            r = read(m, "agent" if sender.get(m) == "customer" else "customer")
        change = folds.unread_change(r)
        if change is None:
            continue
        if change.opens and m not in unread:
            unread[m] = change.reader
            counts[change.reader] += 1
        elif not change.opens and unread.get(m) == change.reader:
            del unread[m]
            read_ids.add(m)
            counts[change.reader] -= 1
    expected = {folds.CUSTOMER: 0, folds.AGENTS: 0}
    for m, by in sender.items():
        if m not in read_ids:
            expected[folds.AGENTS if by == "customer" else folds.CUSTOMER] += 1
    assert counts == expected
