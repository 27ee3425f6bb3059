"""What chat refuses, with the API's code and status for each."""

from __future__ import annotations

from kernel.errors import DomainError


class ChatError(DomainError):
    """A command the rules refuse."""

    code = "chat_error"


class InvalidBody(ChatError):
    code = "invalid_body"


class MessageIdConflict(ChatError):
    """The id is taken by another message (a send never answers "not found")."""

    code = "message_id_conflict"
    status = 409


class MessageNotFound(ChatError):
    code = "message_not_found"
    status = 404


class NotSender(ChatError):
    code = "not_sender"
    status = 403


class NotReceiver(ChatError):
    code = "not_receiver"
    status = 403


class CustomerNotFound(ChatError):
    """An agent wrote to a customer the customers context does not know."""

    code = "customer_not_found"
    status = 404


class TooManyAttachments(ChatError):
    code = "too_many_attachments"


class DuplicateAttachment(ChatError):
    code = "duplicate_attachment"
