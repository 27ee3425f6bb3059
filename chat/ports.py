"""What chat needs from the rest of the system, as ports the composition root fills.

Chat decides about messages; whether a customer exists is the customers
context's business. The rule "agents write only to customers that exist"
needs that answer at write time, so chat asks through ``CustomerDirectory``,
an interface it owns. Likewise the files a message carries belong to the
attachments context: chat asks ``AttachmentCatalog`` to give them to the
message and describe them. The composition root (project.apps) installs
the implementations at start-up; chat never imports either context.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from chat.commands import Actor
from chat.events import AttachmentRef


class CustomerDirectory(Protocol):
    def is_known(self, customer_id: uuid.UUID) -> bool:
        """Whether this customer exists (registered, and not erased since)."""

    def forget(self, customer_id: uuid.UUID) -> None:
        """The customer was erased: stop answering from memory (other processes notice within seconds)."""


_directory: CustomerDirectory | None = None


def install(directory: CustomerDirectory) -> None:
    global _directory
    _directory = directory


def customer_directory() -> CustomerDirectory:
    if _directory is None:
        raise RuntimeError("no customer directory installed: project.apps installs one when Django starts")
    return _directory


class AttachmentCatalog(Protocol):
    def claim(
        self, attachment_ids: Sequence[uuid.UUID], *, sender: Actor, message_id: uuid.UUID, customer_id: uuid.UUID,
    ) -> list[AttachmentRef]:
        """Give these uploads to the message (in the caller's transaction) and describe them, in order.

        Raises a DomainError when one is unknown, not the sender's, or
        already sent with another message; one already given to this same
        message is fine (a retried send).
        """


_catalog: AttachmentCatalog | None = None


def install_attachments(catalog: AttachmentCatalog) -> None:
    global _catalog
    _catalog = catalog


def attachment_catalog() -> AttachmentCatalog:
    if _catalog is None:
        raise RuntimeError("no attachment catalog installed: project.apps installs one when Django starts")
    return _catalog
