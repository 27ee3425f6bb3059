"""Event types used only by the event-store tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from eventstore.events import DomainEvent, event, upcaster


@event("test.Noted", version=2)
@dataclass(frozen=True)
class Noted(DomainEvent):
    note_id: uuid.UUID
    text: str
    author: str


@upcaster("test.Noted", from_version=1)
def _noted_v1_to_v2(payload: dict) -> dict:  # type: ignore[type-arg]
    # v1 had no author; old notes are attributed to "unknown".
    return {**payload, "author": "unknown"}


def noted(text: str = "hello") -> Noted:
    return Noted(note_id=uuid.uuid4(), text=text, author="tester")
