"""The upload size cap, enforced while a multipart body is parsed.

Installed first in settings.FILE_UPLOAD_HANDLERS. It refuses a request
whose declared length is already over the cap before reading any of it,
and counts each file's bytes as Django's parser hands them on, stopping at
the first chunk past ``PARLEY_MAX_ATTACHMENT_BYTES``: an oversized file is
never held in full, in memory or in a temporary file. The refusal is a
DomainError, so the API answers it as 413 ``attachment_too_large`` in its
error shape (api.errors), not as Django's 400.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from attachments.errors import AttachmentTooLarge


def max_bytes() -> int:
    return int(settings.PARLEY_MAX_ATTACHMENT_BYTES)


def too_large() -> AttachmentTooLarge:
    return AttachmentTooLarge(f"attachments are limited to {max_bytes()} bytes")


class CappedUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data: Any, META: Any, content_length: int, boundary: Any,
                         encoding: str | None = None) -> None:
        # The multipart envelope and the other fields (at most
        # DATA_UPLOAD_MAX_MEMORY_SIZE) come on top of the file itself.
        if content_length and content_length > max_bytes() + int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE):
            raise too_large()
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > max_bytes():
            raise too_large()
        return raw_data  # on to the handler that keeps it

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the file
