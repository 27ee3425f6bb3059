"""What the conversations context refuses, with the API's code and status for each."""

from __future__ import annotations

from kernel.errors import DomainError


class ConversationError(DomainError):
    code = "conversation_error"


class AlreadyAssigned(ConversationError):
    """A claim on a conversation another agent holds."""

    code = "already_assigned"
    status = 409


class AssigneeChanged(ConversationError):
    """An assignment's expected assignee is not the current one."""

    code = "assignee_changed"
    status = 409


class InvalidStatus(ConversationError):
    code = "invalid_status"


class InvalidSnooze(ConversationError):
    code = "invalid_snooze"


class InvalidNote(ConversationError):
    code = "invalid_note"


class NoteIdConflict(ConversationError):
    """The note id is taken by another note."""

    code = "note_id_conflict"
    status = 409


class AgentNotFound(ConversationError):
    code = "agent_not_found"
    status = 404


class ConversationNotFound(ConversationError):
    """No such customer, so no such conversation."""

    code = "customer_not_found"
    status = 404
