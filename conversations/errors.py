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


class InvalidLabel(ConversationError):
    """A label that is not one (its form), or one both added and removed."""

    code = "invalid_label"


class TooManyLabels(ConversationError):
    code = "too_many_labels"


class InvalidCannedResponse(ConversationError):
    """A saved reply's field that is not one; the code names the field."""

    code = "invalid_canned_response"


class ShortcutTaken(ConversationError):
    code = "shortcut_taken"
    status = 409


class CannedResponseNotFound(ConversationError):
    code = "canned_response_not_found"
    status = 404


class NotAuthor(ConversationError):
    """Only the agent who wrote a saved reply changes or deletes it (an admin, in Django's admin)."""

    code = "not_author"
    status = 403


class AgentNotFound(ConversationError):
    code = "agent_not_found"
    status = 404


class ConversationNotFound(ConversationError):
    """No such customer, so no such conversation."""

    code = "customer_not_found"
    status = 404


class NotResolved(ConversationError):
    """A rating of a conversation that is not resolved (open, pending, snoozed, or never started)."""

    code = "conversation_not_resolved"


class NotYourConversation(ConversationError):
    """A customer naming another customer's conversation."""

    code = "not_your_conversation"


class InvalidScore(ConversationError):
    code = "invalid_score"


class InvalidComment(ConversationError):
    code = "invalid_comment"
