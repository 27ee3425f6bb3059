"""Rules of the ChatMessage aggregate, without a database."""

import datetime as dt
import uuid

import pytest

from chat.commands import MAX_BODY_CHARS, Actor, EditMessage, MarkMessageAsRead, SendMessage
from chat.domain import ChatMessage
from chat.errors import InvalidBody, MessageIdConflict, MessageNotFound, NotReceiver, NotSender
from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
CUSTOMER_ID = uuid.uuid4()
CUSTOMER = Actor(SenderKind.CUSTOMER, str(CUSTOMER_ID), "Ada")
OTHER_CUSTOMER = Actor(SenderKind.CUSTOMER, str(uuid.uuid4()), "Eve")
AGENT = Actor(SenderKind.AGENT, "7", "Grace")
OTHER_AGENT = Actor(SenderKind.AGENT, "8", "Linus")


def sent_by(actor: Actor, body: str = "hello") -> ChatMessage:
    cmd = SendMessage(uuid.uuid4(), CUSTOMER_ID, actor, body)
    state = ChatMessage.replay(ChatMessage.send(cmd, NOW))
    assert state is not None
    return state


def test_sending_records_one_message_sent_with_the_stripped_body():
    cmd = SendMessage(uuid.uuid4(), CUSTOMER_ID, CUSTOMER, "  hi there \n")
    [evt] = ChatMessage.send(cmd, NOW)
    assert isinstance(evt, MessageSent)
    assert evt.body == "hi there"
    assert evt.sender_kind == "customer" and evt.sent_at == NOW


@pytest.mark.parametrize("body", ["", "   \n\t", "x" * (MAX_BODY_CHARS + 1), "a\x00b", "\ud800 lone"])
def test_a_body_outside_one_to_four_thousand_characters_is_refused(body):
    with pytest.raises(InvalidBody):
        ChatMessage.send(SendMessage(uuid.uuid4(), CUSTOMER_ID, CUSTOMER, body), NOW)


def test_a_body_of_exactly_four_thousand_characters_is_accepted():
    [evt] = ChatMessage.send(SendMessage(uuid.uuid4(), CUSTOMER_ID, CUSTOMER, "x" * MAX_BODY_CHARS), NOW)
    assert len(evt.body) == MAX_BODY_CHARS


def test_a_customer_cannot_send_into_another_customers_conversation():
    with pytest.raises(NotSender):
        ChatMessage.send(SendMessage(uuid.uuid4(), CUSTOMER_ID, OTHER_CUSTOMER, "hi"), NOW)


def test_the_same_send_again_is_accepted_and_another_body_is_a_conflict():
    msg = sent_by(CUSTOMER, "hello")
    msg.send_again(SendMessage(msg.message_id, CUSTOMER_ID, CUSTOMER, " hello "))
    with pytest.raises(MessageIdConflict):
        msg.send_again(SendMessage(msg.message_id, CUSTOMER_ID, CUSTOMER, "other"))


def test_only_the_sender_edits():
    msg = sent_by(AGENT)
    [evt] = msg.edit(EditMessage(msg.message_id, AGENT, "fixed"), NOW)
    assert isinstance(evt, MessageEdited) and evt.body == "fixed"
    with pytest.raises(NotSender):
        msg.edit(EditMessage(msg.message_id, OTHER_AGENT, "mine now"), NOW)
    with pytest.raises(NotSender):
        msg.edit(EditMessage(msg.message_id, CUSTOMER, "mine now"), NOW)


def test_an_edit_to_the_same_body_records_nothing():
    msg = sent_by(CUSTOMER, "same")
    assert msg.edit(EditMessage(msg.message_id, CUSTOMER, " same "), NOW) == []


def test_another_customer_cannot_see_edit_or_mark_a_message():
    msg = sent_by(AGENT)
    with pytest.raises(MessageNotFound):
        msg.mark_read(MarkMessageAsRead(msg.message_id, OTHER_CUSTOMER), NOW)
    with pytest.raises(MessageNotFound):
        msg.edit(EditMessage(msg.message_id, OTHER_CUSTOMER, "x"), NOW)


def test_the_customer_marks_an_agent_message_read_once():
    msg = sent_by(AGENT)
    [evt] = msg.mark_read(MarkMessageAsRead(msg.message_id, CUSTOMER), NOW)
    assert isinstance(evt, MessageMarkedAsRead)
    read = ChatMessage.apply(msg, evt)
    assert read.read_at == NOW
    assert read.mark_read(MarkMessageAsRead(msg.message_id, CUSTOMER), NOW) == []


def test_any_agent_marks_a_customer_message_read_but_not_the_customer():
    msg = sent_by(CUSTOMER)
    assert len(msg.mark_read(MarkMessageAsRead(msg.message_id, OTHER_AGENT), NOW)) == 1
    with pytest.raises(NotReceiver):
        msg.mark_read(MarkMessageAsRead(msg.message_id, CUSTOMER), NOW)


def test_an_agent_cannot_mark_an_agent_message_read():
    msg = sent_by(AGENT)
    with pytest.raises(NotReceiver):
        msg.mark_read(MarkMessageAsRead(msg.message_id, OTHER_AGENT), NOW)


def test_replay_folds_the_history_into_the_same_state():
    msg = sent_by(AGENT, "v1")
    edits = msg.edit(EditMessage(msg.message_id, AGENT, "v2"), NOW)
    state = ChatMessage.apply(msg, edits[0])
    reads = state.mark_read(MarkMessageAsRead(msg.message_id, CUSTOMER), NOW)
    history = ChatMessage.send(SendMessage(msg.message_id, CUSTOMER_ID, AGENT, "v1"), msg.sent_at) + edits + reads
    final = ChatMessage.replay(history)
    assert final is not None
    assert (final.body, final.edited_at, final.read_at, final.version) == ("v2", NOW, NOW, 3)


def test_a_retried_send_after_an_edit_is_still_the_same_message():
    msg = sent_by(CUSTOMER, "helo")
    edited = ChatMessage.apply(msg, msg.edit(EditMessage(msg.message_id, CUSTOMER, "hello"), NOW)[0])
    edited.send_again(SendMessage(msg.message_id, CUSTOMER_ID, CUSTOMER, "helo"))  # the phone's late retry
    with pytest.raises(MessageIdConflict):
        edited.send_again(SendMessage(msg.message_id, CUSTOMER_ID, CUSTOMER, "hello"))
