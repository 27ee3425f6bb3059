"""Domain events: frozen dataclasses, registered by type name, versioned.

This module imports no Django, so domain modules can build on it. An event
class is registered with :func:`event` under a stable type name and a schema
version. Stored payloads of older versions pass through the upcasters
registered for that type, one version step at a time, before the class is
built, so old events keep loading after a schema change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class DomainEvent:
    """Base of every domain event. Subclasses are frozen dataclasses."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int]


E = TypeVar("E", bound=type[DomainEvent])
T = TypeVar("T")

_registry: dict[str, type[DomainEvent]] = {}
_upcasters: dict[tuple[str, int], Upcaster] = {}


class UnknownEventType(LookupError):
    """A stored event names a type that no module registered."""


#: Shards events are spread over by their partition key (the customer): a
#: partitioned consumer group reads the shards ``shard % partitions == p``.
#: Fixed, so that the number of partitions can change without touching the log.
SHARDS = 1024

_partition_keys: dict[str, str] = {}


@dataclass(frozen=True)
class Personal:
    """Whose personal data an event type carries, and in which fields.

    ``subject`` names the field holding the person's id (kept in clear);
    ``fields`` are sealed in the log with that person's key, so that
    destroying the key erases them (eventstore.keys).
    """

    subject: str
    fields: tuple[str, ...]


_personal: dict[str, Personal] = {}


def event(
    name: str,
    version: int = 1,
    *,
    partitioned_by: str | None = None,
    subject: str | None = None,
    personal: tuple[str, ...] = (),
) -> Callable[[E], E]:
    """Register a frozen dataclass as the event type ``name`` at ``version``.

    ``partitioned_by`` names the field whose value keeps events together:
    every event with the same value lands in the same shard, so a partitioned
    consumer group sees them in log order (the contexts give the customer id).

    ``subject`` names the field holding the id of the person the event is
    about, and ``personal`` the fields that are that person's data: the log
    stores them encrypted with the person's key, and once the person is
    erased every event with their id as subject reads back as ``Erased``.
    """
    if personal and subject is None:
        raise TypeError(f"event {name!r} declares personal fields but no subject")

    def register(cls: E) -> E:
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        existing = _registry.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"event type {name!r} is already registered by {existing!r}")
        cls.event_type = name
        cls.schema_version = version
        _registry[name] = cls
        if partitioned_by is not None:
            if partitioned_by not in {f.name for f in dataclasses.fields(cls)}:
                raise TypeError(f"{cls.__name__} has no field {partitioned_by!r} to be partitioned by")
            _partition_keys[name] = partitioned_by
        if subject is not None:
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = [f for f in (subject, *personal) if f not in names]
            if unknown:
                raise TypeError(f"{cls.__name__} has no field {unknown[0]!r} to be personal data of")
            if subject in personal:
                raise TypeError(f"{cls.__name__}: the subject {subject!r} is an id, kept in clear")
            _personal[name] = Personal(subject, tuple(personal))
        return cls

    return register


def partition_keys() -> dict[str, str]:
    """Every registered event type that declares a partition key, and its field."""
    return dict(_partition_keys)


def partition_key_field(event_type: str) -> str | None:
    """The field an event type is partitioned by (None: it goes to shard 0)."""
    return _partition_keys.get(event_type)


def personal_of(event_type: str) -> Personal | None:
    """Whose data an event type carries and in which fields (None: nobody's)."""
    return _personal.get(event_type)


def personal_types() -> dict[str, Personal]:
    """Every event type that carries someone's data, with what it carries."""
    return dict(_personal)


def shard_of(value: object) -> int:
    """The shard of a partition key's value: the first 16 bits of the MD5 of its text,
    modulo ``SHARDS`` (PostgreSQL computes the same in SQL when a migration backfills)."""
    digest = hashlib.md5(str(value).encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:2], "big") % SHARDS


def shard_of_event(e: DomainEvent) -> int:
    field_name = _partition_keys.get(e.event_type)
    return 0 if field_name is None else shard_of(getattr(e, field_name))


def upcaster(name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning a ``name`` payload of ``from_version`` into the next version."""

    def register(fn: Upcaster) -> Upcaster:
        _upcasters[(name, from_version)] = fn
        return fn

    return register


def event_class(name: str) -> type[DomainEvent]:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownEventType(name) from None


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a value object inside an event
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not allowed in events")
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


#: UUIDs parsed from payloads, shared: the same customer and message ids
#: come back event after event, and parsing one costs more than a lookup.
#: (UUIDs are immutable, so sharing one is safe.)
_uuid = functools.lru_cache(maxsize=1 << 16)(uuid.UUID)


def _converter(kind: Any) -> Callable[[Any], Any] | None:
    """How to turn a JSON value back into a field of type ``kind`` (None: as is).

    Besides UUIDs and times: ``tuple[X, ...]`` (a JSON array, each item
    converted as an X) and frozen dataclasses nested in an event (a JSON
    object, built field by field like the event itself).
    """
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _converter(inner[0]) if len(inner) == 1 else None
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])
            if item is None:
                return tuple
            return lambda values: tuple(item(v) for v in values)
        return None
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return functools.partial(_build, kind)
    if kind is uuid.UUID:
        return _uuid
    if kind is dt.datetime:
        return dt.datetime.fromisoformat
    return None


@dataclass(frozen=True)
class _Decoder:
    names: frozenset[str]
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]  # the fields that are not JSON as is
    #: Fields with a plain default (not a factory), filled in when a payload lacks them.
    defaults: tuple[tuple[str, Any], ...]
    #: Instances may be made without ``__init__`` (see ``assemble``).
    direct: bool


_decoders: dict[type, _Decoder] = {}


def _decoder_of(cls: type) -> _Decoder:
    # Resolving type hints is slow; a replay decodes hundreds of thousands of events.
    found = _decoders.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        converters = tuple((f.name, c) for f in fields if (c := _converter(hints[f.name])) is not None)
        defaults = tuple((f.name, f.default) for f in fields if f.default is not dataclasses.MISSING)
        found = _decoders[cls] = _Decoder(frozenset(f.name for f in fields), converters, defaults, _assemblable(cls))
    return found


def _assemblable(cls: type) -> bool:
    """Whether ``assemble`` may make instances of ``cls``: a dataclass whose
    ``__init__`` only stores its fields (every field in it, no ``__post_init__``,
    no slots)."""
    init = getattr(cls, "__init__", None)
    return (
        dataclasses.is_dataclass(cls)
        # The __init__ dataclasses wrote (not one of the class's own); where a
        # Python version names it otherwise, classes are built by their constructor.
        and getattr(getattr(init, "__code__", None), "co_qualname", "").endswith("__create_fn__.<locals>.__init__")
        and not hasattr(cls, "__post_init__")
        and not any("__slots__" in k.__dict__ for k in cls.__mro__[:-1])
        and all(f.init for f in dataclasses.fields(cls))
    )


_new = object.__new__


def assemble(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of the dataclass ``cls`` holding ``fields`` (every one of its
    fields, nothing else), made without calling its ``__init__``.

    A frozen dataclass's ``__init__`` stores each field through
    ``object.__setattr__``: five times the cost of filling the instance's
    dictionary at once, and a replay makes three instances per event (the
    event, its metadata, the recorded event). Only for classes whose
    ``__init__`` does nothing else (``_assemblable``); the caller passes
    exactly the fields. The instance is indistinguishable from one made by
    ``cls(**fields)``: same attributes, equality, hash and repr.
    """
    obj = _new(cls)
    obj.__dict__.update(fields)
    return obj


def _build(cls: type, payload: Payload) -> Any:
    """An instance of the dataclass ``cls`` from its JSON payload (unknown keys dropped)."""
    decoder = _decoder_of(cls)
    if payload.keys() <= decoder.names:
        kwargs = dict(payload)
    else:  # keys of fields the class no longer has are dropped
        kwargs = {k: v for k, v in payload.items() if k in decoder.names}
    for field_name, convert in decoder.converters:
        value = kwargs.get(field_name)
        if value is not None:
            kwargs[field_name] = convert(value)
    if decoder.direct:
        if len(kwargs) < len(decoder.names):  # a payload from before a field with a default was added
            for field_name, default in decoder.defaults:
                kwargs.setdefault(field_name, default)
        if len(kwargs) == len(decoder.names):
            return assemble(cls, kwargs)
    return cls(**kwargs)  # a field is missing (TypeError names it), or a class with its own __init__ work


def encode(evt: DomainEvent) -> Payload:
    """The JSON-ready payload of an event (its dataclass fields)."""
    return {f.name: _to_json(getattr(evt, f.name)) for f in dataclasses.fields(evt)}  # type: ignore[arg-type]


def decode(name: str, version: int, payload: Payload) -> DomainEvent:
    """Build the current class of ``name`` from a stored payload of ``version``."""
    cls = event_class(name)
    while version < cls.schema_version:
        step = _upcasters.get((name, version))
        if step is None:
            raise UnknownEventType(f"no upcaster for {name} v{version}")
        payload = step(dict(payload))
        version += 1
    return _build(cls, payload)


@dataclass(frozen=True)
class Metadata:
    """Who and what caused an event; stored beside its payload."""

    actor: str = "system"
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None

    def as_json(self) -> Payload:
        return {
            "actor": self.actor,
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "causation_id": str(self.causation_id) if self.causation_id else None,
        }

    @classmethod
    def from_json(cls, raw: Payload) -> Metadata:
        correlation, causation = raw.get("correlation_id"), raw.get("causation_id")
        return assemble(cls, {
            "actor": raw.get("actor", "system"),
            "correlation_id": uuid.UUID(correlation) if correlation else None,
            "causation_id": uuid.UUID(causation) if causation else None,
        })


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended, with the id that makes re-appending it detectable."""

    event: DomainEvent
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, order=True)
class Cursor:
    """A place in the log in reading order.

    On PostgreSQL reading order is (transaction id, position): a transaction
    id read barrier keeps readers from passing a transaction that has not
    committed yet. On SQLite the transaction id is always 0 and the order is
    plain position order. Clients only ever see positions; the server turns
    a position into a cursor with ``EventStore.cursor_at``.
    """

    tx: int
    position: int

    @classmethod
    def start(cls) -> Cursor:
        return cls(0, 0)


@dataclass(frozen=True)
class Undecodable(DomainEvent):
    """An event the log holds that this code cannot decode (a malformed payload,
    a type or schema version it does not know). It keeps its stored type, so it
    reaches the consumer groups that want that type, and each of them stops on
    it, alone, naming it, until an operator parks it or the code is fixed
    (eventstore.runner): never skipped in silence, never a reason for the
    groups that do not want it to stop."""

    event_type: str  # type: ignore[misc]  # the stored type, for this one event
    error: str


@dataclass(frozen=True)
class Erased(DomainEvent):
    """An event about a person who was erased: their key is gone, so what it
    said about them can no longer be read by anyone. It keeps its stored type
    and its subject; readers of the log skip it (eventstore.reading), so no
    consumer group and no rebuild ever sees the person again."""

    event_type: str  # type: ignore[misc]  # the stored type, for this one event
    subject: str


@dataclass(frozen=True)
class RecordedEvent:
    """An event as read back from the log."""

    position: int
    tx: int
    stream_id: str
    version: int
    event_id: uuid.UUID
    event: DomainEvent
    metadata: Metadata
    recorded_at: dt.datetime
    #: The shard of the event's partition key (shard_of); 0 for an event without one.
    shard: int = 0

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.tx, self.position)

    @functools.cached_property
    def event_type(self) -> str:
        # Cached: consumers ask it of every event again and again (the log's
        # reader sets it when it builds the record).
        return self.event.event_type
