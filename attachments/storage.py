"""Where attachment bytes live: the "attachments" storage of settings.STORAGES.

The local disk by default, S3 or a compatible store when configured
(project/settings.py, docs/operations.md); this module only names the files.
Names are made from the attachment's id, never from anything the client
sent, so no upload can choose or guess a path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

log = logging.getLogger(__name__)


def storage() -> Storage:
    return storages["attachments"]


def save(name: str, data: bytes) -> str:
    """Store ``data`` under ``name``; the name actually used (a storage may change it)."""
    return storage().save(name, ContentFile(data))


def blob_name(attachment_id: uuid.UUID) -> str:
    return f"attachments/{attachment_id.hex[:2]}/{attachment_id}"


def thumbnail_name(attachment_id: uuid.UUID) -> str:
    return f"{blob_name(attachment_id)}.thumb"


def delete(names: Iterable[str]) -> None:
    """Delete stored files, best effort: a file left behind is only disk space, never shown
    (no row names it any more), and the storage may be briefly away."""
    for name in names:
        if not name:
            continue
        try:
            storage().delete(name)
        except Exception:
            log.exception("could not delete the attachment file %s", name)
