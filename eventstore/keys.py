"""Per-person data keys: personal fields are sealed at the log's edge, and erasing a person destroys their key.

An event type declares whose data it carries (``@event(..., subject=...,
personal=(...))``, eventstore.events). When such an event is appended, its
personal fields are taken out of the payload, encrypted together with
AES-256-GCM under the data key of its subject, and stored as one
``sealed`` string beside the fields that stay in clear (ids, times, kinds).
When it is read back they are opened again, before any upcaster runs, so
domain code only ever sees plain events.

Each subject's data key is random, made on its first event, and stored in
``parley_subject_keys`` wrapped (AES-GCM again) by a master key from the
environment (``PARLEY_KEYS``): neither the table nor a dump of it opens
anything without the master key. Erasing a subject empties its row
(``erase``): from then on every event whose subject it is reads back as
``eventstore.events.Erased``, which readers skip, and appending one is
refused (``SubjectErased``). The log keeps its events and its order.

``PARLEY_KEYS`` is a comma-separated list of ``id:key`` (the key 32 bytes,
base64url); the first one wraps new keys, the others still unwrap old
ones, until ``rotate_master_key`` has wrapped every key with the first
(docs/privacy.md).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import os
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connections

from kernel.errors import DomainError

TABLE = "parley_subject_keys"

#: The payload key holding an event's sealed personal fields.
SEALED = "sealed"

_NONCE = 12


class _Nonces:
    """Nonces for sealing: a random 96-bit start per process, counted up from there.

    AES-GCM needs a nonce never used twice with one key. Drawn at random
    for every event it cost a system call each (a third of sealing's time
    on a virtual machine); counted from a random start, two processes
    collide only if their runs of at most 2**40 values overlap somewhere in
    2**96, and a forked child starts afresh.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._next = int.from_bytes(os.urandom(_NONCE), "big")

    def take(self) -> bytes:
        with self._lock:
            value = self._next
            self._next = (value + 1) % (1 << 96)
        return value.to_bytes(_NONCE, "big")


_nonces = _Nonces()


class SubjectErased(DomainError):
    """Someone asked to write about a person who has been erased."""

    code = "erased"
    status = 410

    def __init__(self, subject: str) -> None:
        super().__init__(f"the data of {subject} has been erased")
        self.subject = subject


class BadMasterKeys(ValueError):
    """PARLEY_KEYS cannot be read (the message says why, never a key)."""


def new_master_key() -> str:
    """A fresh master key, as PARLEY_KEYS writes it (base64url, 32 bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@dataclass(frozen=True)
class MasterKeys:
    """The master keys PARLEY_KEYS names; the first wraps new data keys."""

    keys: dict[str, AESGCM]
    current: str

    @classmethod
    def parse(cls, spec: str) -> MasterKeys:
        keys: dict[str, AESGCM] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key_id, sep, encoded = part.partition(":")
            key_id = key_id.strip()
            if not sep or not key_id or len(key_id) > 32:
                raise BadMasterKeys("PARLEY_KEYS must be a comma-separated list of id:key (an id of 1 to 32 characters)")
            try:
                text = encoded.strip()
                raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise BadMasterKeys(f"PARLEY_KEYS: the key {key_id!r} is not base64url") from None
            if len(raw) != 32:
                raise BadMasterKeys(f"PARLEY_KEYS: the key {key_id!r} must be 32 bytes (it is {len(raw)})")
            if key_id in keys:
                raise BadMasterKeys(f"PARLEY_KEYS names {key_id!r} twice")
            keys[key_id] = AESGCM(raw)
            order.append(key_id)
        if not order:
            raise BadMasterKeys("PARLEY_KEYS names no key")
        return cls(keys, order[0])

    def wrap(self, subject: str, data_key: bytes) -> tuple[str, str]:
        nonce = os.urandom(_NONCE)
        sealed = self.keys[self.current].encrypt(nonce, data_key, subject.encode())
        return self.current, base64.b64encode(nonce + sealed).decode()

    def unwrap(self, subject: str, master: str, wrapped: str) -> bytes:
        key = self.keys.get(master)
        if key is None:
            raise BadMasterKeys(f"a data key is wrapped by the master key {master!r}, which PARLEY_KEYS does not name")
        raw = base64.b64decode(wrapped)
        return key.decrypt(raw[:_NONCE], raw[_NONCE:], subject.encode())


@functools.lru_cache(maxsize=4)
def _parsed(spec: str) -> MasterKeys:
    return MasterKeys.parse(spec)


def master_keys() -> MasterKeys:
    return _parsed(str(settings.PARLEY_KEYS))


#: Data keys already unwrapped, by (subject, master, wrapped): unwrapping is
#: cheap, but a replay meets the same customers batch after batch. A row
#: that changes (rotated, erased) has another key here, so nothing stale is used.
_ciphers: dict[tuple[str, str, str], AESGCM] = {}
_CIPHERS_KEPT = 50_000


def _cipher(subject: str, master: str, wrapped: str) -> AESGCM:
    found = _ciphers.get((subject, master, wrapped))
    if found is None:
        if len(_ciphers) >= _CIPHERS_KEPT:
            _ciphers.clear()
        found = _ciphers[(subject, master, wrapped)] = AESGCM(master_keys().unwrap(subject, master, wrapped))
    return found


def _aad(event_type: str, subject: str) -> bytes:
    # Binds the sealed fields to their event type and subject: they cannot be
    # pasted into another event, or another person's, and still open.
    return f"{event_type}\x00{subject}".encode()


@dataclass
class Keyring:
    """The data keys of the subjects one read or one append deals with.

    ``ciphers`` holds each known subject's cipher, or None when the subject
    was erased; a subject without an entry never had a key.
    """

    ciphers: dict[str, AESGCM | None]

    def erased(self, subject: str) -> bool:
        return subject in self.ciphers and self.ciphers[subject] is None

    def seal(self, event_type: str, subject: str, fields: bytes) -> str:
        cipher = self.ciphers.get(subject)
        if cipher is None:
            raise SubjectErased(subject)
        nonce = _nonces.take()
        return base64.b64encode(nonce + cipher.encrypt(nonce, fields, _aad(event_type, subject))).decode()

    def open(self, event_type: str, subject: str, sealed: str) -> bytes | None:
        """The sealed fields (JSON), or None: the subject's key is gone."""
        cipher = self.ciphers.get(subject)
        if cipher is None:
            return None
        raw = base64.b64decode(sealed)
        try:
            return cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(event_type, subject))
        except InvalidTag:
            # Sealed with a key this subject no longer has (appended while
            # the subject was being erased): it can never be read.
            return None


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _select(using: str, subjects: list[str]) -> list[tuple[Any, ...]]:
    conn = connections[using]
    rows: list[tuple[Any, ...]] = []
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql" and all(s and "," not in s for s in subjects):
            # One text parameter, split by the server: a list parameter is quoted item
            # by item in Python, three times the cost for a rebuild's thousands of subjects.
            cursor.execute(
                f"SELECT subject, master, wrapped, erased_at FROM {TABLE} WHERE subject = ANY(string_to_array(%s, ','))",
                [",".join(subjects)],
            )
            return list(cursor.fetchall())
        for chunk in _chunks(subjects):
            if conn.vendor == "postgresql":
                cursor.execute(f"SELECT subject, master, wrapped, erased_at FROM {TABLE} WHERE subject = ANY(%s)", [chunk])
            else:
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"SELECT subject, master, wrapped, erased_at FROM {TABLE} WHERE subject IN ({marks})", chunk)
            rows += cursor.fetchall()
    return rows


def keyring_of(rows: Iterable[Sequence[Any]]) -> Keyring:
    """The keyring of rows of the keys table read elsewhere: (subject, master, wrapped, erased_at)."""
    ciphers: dict[str, AESGCM | None] = {}
    for subject, master, wrapped, erased_at in rows:
        ciphers[subject] = None if erased_at is not None or not wrapped else _cipher(subject, master, wrapped)
    return Keyring(ciphers)


def for_reading(subjects: Collection[str], using: str = "default") -> Keyring:
    """The keys of ``subjects`` as they are now (one query)."""
    if not subjects:
        return Keyring({})
    return keyring_of(_select(using, list(subjects)))


#: Data keys appends sealed with lately, by (database, subject), and when they were read:
#: a command needs no extra query for a customer it has seen. Kept only for a
#: minute: an erasure elsewhere is enforced by the append's own statement
#: (eventstore.store), and this process's memory forgets the key soon after.
_for_appending: dict[tuple[str, str], tuple[float, AESGCM]] = {}
APPEND_KEYS_SECONDS = 60.0


def for_appending(subjects: Collection[str], using: str = "default") -> Keyring:
    """The keys of ``subjects``, made for those that have none yet.

    Raises SubjectErased if one of them is known to be erased. The append's
    statement refuses the rows of an erased subject in any case (an
    erasure may commit after the keys were read), so keys read a moment ago
    are used from memory.
    """
    if not subjects:
        return Keyring({})
    now = time.monotonic()
    ciphers: dict[str, AESGCM | None] = {}
    wanted = []
    for subject in subjects:
        found = _for_appending.get((using, subject))
        if found is not None and now - found[0] < APPEND_KEYS_SECONDS:
            ciphers[subject] = found[1]
        else:
            wanted.append(subject)
    if wanted:
        rows = _select(using, wanted)
        missing = sorted(set(wanted) - {r[0] for r in rows})
        if missing:
            _create(using, missing)
            rows = _select(using, wanted)
        ring = keyring_of(rows)
        for subject in wanted:
            cipher = ring.ciphers.get(subject)
            if cipher is None:
                raise SubjectErased(subject)
            if len(_for_appending) >= _CIPHERS_KEPT:
                _for_appending.clear()
            _for_appending[(using, subject)] = (now, cipher)
            ciphers[subject] = cipher
    return Keyring(ciphers)


def _now_param(using: str) -> Any:
    conn = connections[using]
    return conn.ops.adapt_datetimefield_value(dt.datetime.now(dt.timezone.utc))


def _create(using: str, subjects: list[str]) -> None:
    masters = master_keys()
    now = _now_param(using)
    params: list[Any] = []
    for subject in subjects:
        master, wrapped = masters.wrap(subject, AESGCM.generate_key(bit_length=256))
        params += [subject, master, wrapped, now]
    values = ", ".join(["(%s, %s, %s, %s)"] * len(subjects))
    with connections[using].cursor() as cursor:
        # Two first events of one subject at once: the first key stored wins, both use it.
        cursor.execute(
            f"INSERT INTO {TABLE} (subject, master, wrapped, created_at) VALUES {values} ON CONFLICT (subject) DO NOTHING",
            params,
        )


def erase(subject: str, using: str = "default") -> bool:
    """Destroy the data key of ``subject``: every event about them becomes unreadable.

    True if this erased them, False if they were erased already. A subject
    that never had a key gets an erased row all the same, so that no key
    is ever made for them again.
    """
    _for_appending.pop((using, subject), None)
    now = _now_param(using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET wrapped = '', master = '', erased_at = %s WHERE subject = %s AND erased_at IS NULL",
            [now, subject],
        )
        if cursor.rowcount:
            return True
        cursor.execute(
            f"INSERT INTO {TABLE} (subject, master, wrapped, created_at, erased_at) VALUES (%s, '', '', %s, %s) "
            "ON CONFLICT (subject) DO NOTHING",
            [subject, now, now],
        )
        return bool(cursor.rowcount)


def erased_subjects(using: str = "default", *, after: str = "", batch: int = 500) -> list[str]:
    """Up to ``batch`` erased subjects after ``after``, in order (page on with the last one)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT subject FROM {TABLE} WHERE erased_at IS NOT NULL AND subject > %s ORDER BY subject LIMIT %s",
            [after, batch],
        )
        return [str(row[0]) for row in cursor.fetchall()]


def hold(subject: str, using: str = "default") -> None:
    """Keep ``subject`` from being erased until the caller's transaction ends; SubjectErased if they are.

    For what is written about a person outside the log (an upload's row):
    the erasure's update of the key row waits for the caller's commit, and
    the caller sees an erasure that committed first (the row is locked for
    share on PostgreSQL; SQLite has one writer at a time). A subject
    without a key gets one, so there is a row to hold.
    """
    conn = connections[using]
    lock = " FOR SHARE" if conn.vendor == "postgresql" else ""
    for _ in range(2):
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT erased_at, wrapped FROM {TABLE} WHERE subject = %s{lock}", [subject])
            row = cursor.fetchone()
        if row is not None:
            if row[0] is not None or not row[1]:
                raise SubjectErased(subject)
            return
        _create(using, [subject])
    raise LookupError(f"no key row for {subject}")  # created just above: unreachable


def is_erased(subject: str, using: str = "default") -> bool:
    return for_reading([subject], using).erased(subject)


def rotate(using: str = "default", *, batch: int = 500) -> int:
    """Wrap every data key not wrapped by the current master key with it; returns how many.

    Run after putting a new key first in PARLEY_KEYS (the old ones after it);
    once it returns, the old master keys can be removed.
    """
    masters = master_keys()
    done = 0
    conn = connections[using]
    while True:
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT subject, master, wrapped FROM {TABLE} WHERE erased_at IS NULL AND master <> %s "
                "ORDER BY subject LIMIT %s",
                [masters.current, batch],
            )
            rows = cursor.fetchall()
            if not rows:
                return done
            for subject, master, wrapped in rows:
                new_master, new_wrapped = masters.wrap(subject, masters.unwrap(subject, master, wrapped))
                # Only if untouched meanwhile (an erase wins over a rotation).
                cursor.execute(
                    f"UPDATE {TABLE} SET master = %s, wrapped = %s WHERE subject = %s AND wrapped = %s AND erased_at IS NULL",
                    [new_master, new_wrapped, subject, wrapped],
                )
                done += cursor.rowcount


def counts(using: str = "default") -> dict[str, int]:
    """Data keys per master key id, and erased subjects ("": erased)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT master, count(*) FROM {TABLE} GROUP BY master")
        return {str(m): int(n) for m, n in cursor.fetchall()}


def seal_stored(using: str = "default", *, batch: int = 1000) -> int:
    """Seal the personal fields of events stored in clear (written before sealing existed); returns how many.

    The one rewrite of stored rows the log allows, run once on upgrade
    (migration project 0002, or ``python manage.py seal_events``): each
    row keeps its id, position, type and order; only its payload's personal
    fields move into ``sealed``. The fields of a subject erased meanwhile are
    dropped, as unreadable as sealed ones. Safe to run again.
    """
    import json

    import orjson

    from eventstore.events import _personal

    types = sorted(t for t, declared in _personal.items() if declared.fields)
    if not types:
        return 0
    conn = connections[using]
    marks = ", ".join(["%s"] * len(types))
    last, done = 0, 0
    while True:
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT position, event_type, data FROM parley_events WHERE position > %s AND event_type IN ({marks}) "
                "ORDER BY position LIMIT %s",
                [last, *types, batch],
            )
            rows = cursor.fetchall()
        if not rows:
            return done
        last = int(rows[-1][0])
        plain: list[tuple[int, str, dict[str, Any]]] = []
        for position, event_type, data in rows:
            payload = orjson.loads(data)
            declared = _personal[event_type]
            if SEALED not in payload and any(f in payload for f in declared.fields):
                plain.append((int(position), event_type, payload))
        if not plain:
            continue
        subjects = {str(p[_personal[t].subject]) for _, t, p in plain}
        known = {r[0] for r in _select(using, list(subjects))}
        missing = sorted(subjects - known)
        if missing:
            _create(using, missing)
        ring = keyring_of(_select(using, list(subjects)))
        updates = []
        for position, event_type, payload in plain:
            declared = _personal[event_type]
            subject = str(payload[declared.subject])
            fields = {f: payload.pop(f) for f in declared.fields if f in payload}
            if not ring.erased(subject):
                payload[SEALED] = ring.seal(event_type, subject, json.dumps(fields).encode())
            updates.append((json.dumps(payload, separators=(",", ":")), position))
        with conn.cursor() as cursor:
            cursor.executemany("UPDATE parley_events SET data = %s WHERE position = %s", updates)
        done += len(updates)
