import datetime as dt
import uuid
from dataclasses import FrozenInstanceError, dataclass

import pytest

from eventstore.events import Cursor, DomainEvent, Metadata, RecordedEvent, assemble, decode, encode, event
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


@event("test.Defaulted")
@dataclass(frozen=True)
class Defaulted(DomainEvent):
    item_id: uuid.UUID
    count: int
    tags: tuple[str, ...] = ()
    label: str = "none"


def test_decoded_events_are_the_events_their_constructor_makes():
    # decode() fills the instance without calling __init__ (a replay's cost):
    # the result must be indistinguishable from the constructor's.
    item_id = uuid.uuid4()
    made = Defaulted(item_id=item_id, count=3, tags=("a", "b"), label="x")
    back = decode("test.Defaulted", 1, encode(made))
    assert back == made and hash(back) == hash(made) and repr(back) == repr(made)
    assert type(back) is Defaulted and isinstance(back.item_id, uuid.UUID) and back.tags == ("a", "b")
    with pytest.raises(FrozenInstanceError):
        back.count = 4  # type: ignore[misc]
    # A payload written before the fields with defaults existed gets the defaults...
    assert decode("test.Defaulted", 1, {"item_id": str(item_id), "count": 1}) == Defaulted(item_id, 1)
    # ...a payload without a required field is refused as the constructor refuses it,
    with pytest.raises(TypeError, match="count"):
        decode("test.Defaulted", 1, {"item_id": str(item_id)})
    # and keys of fields the class no longer has are dropped.
    assert decode("test.Defaulted", 1, {"item_id": str(item_id), "count": 2, "gone": 1}) == Defaulted(item_id, 2)


def test_a_class_with_its_own_init_work_is_built_by_its_constructor():
    @event("test.Checked")
    @dataclass(frozen=True)
    class Checked(DomainEvent):
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    assert decode("test.Checked", 1, {"n": 1}) == Checked(1)
    with pytest.raises(ValueError, match="negative"):
        decode("test.Checked", 1, {"n": -1})


def test_assemble_makes_what_the_constructor_makes():
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    fields = {"position": 7, "tx": 3, "stream_id": "s", "version": 1, "event_id": uuid.uuid4(),
              "event": Defaulted(uuid.uuid4(), 1), "metadata": Metadata(actor="a"), "recorded_at": at, "shard": 2}
    made, assembled = RecordedEvent(**fields), assemble(RecordedEvent, dict(fields))
    assert assembled == made and hash(assembled) == hash(made) and repr(assembled) == repr(made)
    assert assembled.event_type == "test.Defaulted" and assembled.cursor == Cursor(3, 7)


def test_a_class_with_its_own_init_is_never_assembled():
    @event("test.Handmade")
    @dataclass(frozen=True)
    class Handmade(DomainEvent):
        n: int

        def __init__(self, n: int) -> None:
            object.__setattr__(self, "n", n * 2)

    assert decode("test.Handmade", 1, {"n": 2}).n == 4  # its __init__ ran
