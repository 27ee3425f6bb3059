import datetime as dt
import uuid
from dataclasses import dataclass

import pytest

from eventstore.events import Cursor, DomainEvent, decode, encode, event
from tests.eventstore_fixtures import Noted


def test_an_event_survives_encoding_with_its_types():
    original = Noted(note_id=uuid.uuid4(), text="hi", author="a")
    back = decode("test.Noted", 2, encode(original))
    assert back == original
    assert isinstance(back.note_id, uuid.UUID)


def test_an_old_payload_is_upcast_to_the_current_schema():
    note_id = uuid.uuid4()
    back = decode("test.Noted", 1, {"note_id": str(note_id), "text": "old"})
    assert back == Noted(note_id=note_id, text="old", author="unknown")


def test_events_must_be_frozen_dataclasses():
    with pytest.raises(TypeError):

        @event("test.Mutable")
        @dataclass
        class Mutable(DomainEvent):
            x: int


def test_naive_datetimes_are_refused():
    @event("test.Timed")
    @dataclass(frozen=True)
    class Timed(DomainEvent):
        at: dt.datetime

    with pytest.raises(ValueError):
        encode(Timed(at=dt.datetime(2026, 1, 1)))
    aware = Timed(at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert decode("test.Timed", 1, encode(aware)) == aware


def test_cursors_order_by_transaction_then_position():
    assert Cursor(5, 10) < Cursor(6, 9) < Cursor(6, 11)
    assert Cursor.start() < Cursor(0, 1)


def test_personal_fields_need_a_subject_and_must_be_fields_of_the_event():
    with pytest.raises(TypeError, match="no subject"):

        @event("test.NoSubject", personal=("body",))
        @dataclass(frozen=True)
        class NoSubject(DomainEvent):
            body: str

    with pytest.raises(TypeError, match="no field 'bdoy'"):

        @event("test.Misspelt", subject="person_id", personal=("bdoy",))
        @dataclass(frozen=True)
        class Misspelt(DomainEvent):
            person_id: uuid.UUID
            body: str

    with pytest.raises(TypeError, match="kept in clear"):

        @event("test.SubjectSealed", subject="person_id", personal=("person_id",))
        @dataclass(frozen=True)
        class SubjectSealed(DomainEvent):
            person_id: uuid.UUID


def test_the_published_events_declare_whose_data_they_carry():
    import chat.events  # noqa: F401
    import conversations.events  # noqa: F401
    import customers.events  # noqa: F401
    from eventstore.events import personal_of

    assert personal_of("MessageSent").fields == ("sender_name", "body", "attachments")  # type: ignore[union-attr]
    assert personal_of("CustomerRegistered").fields == ("name", "email", "phone", "external_id")  # type: ignore[union-attr]
    assert personal_of("NoteAdded").fields == ("body",)  # type: ignore[union-attr]
    assert personal_of("ConversationAssigned").fields == ()  # type: ignore[union-attr]
    # CustomerErased must stay readable once the key is gone
    assert personal_of("CustomerErased") is None
