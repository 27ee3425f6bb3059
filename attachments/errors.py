"""What the attachments context refuses, with the API's code and status for each."""

from __future__ import annotations

from kernel.errors import DomainError


class AttachmentError(DomainError):
    code = "attachment_error"


class AttachmentTypeNotAllowed(AttachmentError):
    """The bytes are not one of the accepted types (whatever the client declared)."""

    code = "attachment_type_not_allowed"
    status = 415


class AttachmentTooLarge(AttachmentError):
    code = "attachment_too_large"
    status = 413


class ImageTooLarge(AttachmentError):
    """An image whose pixel count could exhaust memory when decoded (a decompression bomb)."""

    code = "image_too_large"
    status = 400


class MissingFile(AttachmentError):
    code = "missing_file"
    status = 400


class UnknownAttachment(AttachmentError):
    """No attachment with this id that the sender uploaded.

    One answer for "does not exist", "expired" and "someone else's": a
    sender learns nothing about other people's uploads by guessing ids.
    """

    code = "unknown_attachment"
    status = 400


class AttachmentAlreadySent(AttachmentError):
    """An attachment belongs to exactly one message."""

    code = "attachment_already_sent"
    status = 409
