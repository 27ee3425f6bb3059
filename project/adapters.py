"""Adapters between contexts, installed by the composition root (project.apps)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from accounts import presence, profiles
from accounts.tokens import issue_chat_link_token
from attachments.services import attachments_claim
from chat.commands import Actor, SendMessage
from chat.errors import MessageIdConflict
from chat.events import AttachmentRef, SenderKind
from chat.handlers import send_message
from conversations.commands import Agent
from customers.directory import KnownCustomers
from eventstore.events import Metadata


class AgentsFromIdentity:
    """The conversations context's AgentDirectory, answered by the identity context."""

    def agent(self, agent_id: str) -> Agent | None:
        found = presence.active_agent(agent_id)
        return Agent(*found) if found is not None else None

    def online(self) -> list[Agent]:
        return [Agent(i, n) for i, n in presence.online_agents()]


class AgentNamesFromProfiles:
    """The read side's AgentNames, answered by the identity context's profiles."""

    def names(self, agent_ids: Collection[str]) -> dict[str, str]:
        return profiles.public_names(agent_ids)

    def everyone_query(self) -> tuple[str, list[Any], Callable[[Iterable[Sequence[Any]]], dict[str, str]]]:
        return profiles.every_public_name_query()


class CustomersFromDirectory:
    def __init__(self) -> None:
        self._known = KnownCustomers()

    def is_known(self, customer_id: uuid.UUID) -> bool:
        return self._known.is_known(customer_id)


class SystemMessagesToChat:
    """The conversations context's SystemMessages: a chat message of kind ``system``.

    The message's id is the caller's (derived from the waiting period it
    answers), and chat appends a message at version 0 of its own stream: of
    two writers at once, exactly one writes it and the other finds it there.
    """

    def send(self, customer_id: uuid.UUID, message_id: uuid.UUID, body: str) -> bool:
        cmd = SendMessage(message_id, customer_id, Actor(SenderKind.SYSTEM, "system", "Support"), body)
        try:
            written = send_message(cmd, metadata=Metadata(actor="system"), adapter="workflow")
        except MessageIdConflict:
            return False  # written before with another text (the setting changed meanwhile): once is enough
        return written.appended


class EmailLinksToWeb:
    """The notifications context's EmailLinks: the web app's pages, with identity's chat link token."""

    def chat(self, customer_id: uuid.UUID, *, at: dt.datetime) -> str:
        return reverse("web:chat") + "?" + urlencode({"token": issue_chat_link_token(customer_id, at=at)})

    def unsubscribe(self, token: str) -> str:
        return reverse("web:email_unsubscribe", args=[token])

    def verify(self, token: str) -> str:
        return reverse("web:email_verify", args=[token])


class AttachmentsFromCatalog:
    """Chat's AttachmentCatalog, answered by the attachments context."""

    def claim(
        self, attachment_ids: Sequence[uuid.UUID], *, sender: Actor, message_id: uuid.UUID, customer_id: uuid.UUID,
    ) -> list[AttachmentRef]:
        rows = attachments_claim(attachment_ids, uploader_kind=sender.kind.value, uploader_id=sender.id,
                                 message_id=message_id, customer_id=customer_id)
        return [AttachmentRef(row.id, row.name, row.content_type, row.size, bool(row.thumbnail)) for row in rows]
