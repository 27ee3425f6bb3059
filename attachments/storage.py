"""Where attachment bytes live: the "attachments" storage of settings.STORAGES.

The local disk by default, S3 or a compatible store when configured
(project/settings.py, docs/operations.md); this module only names the files.
Names are made from the attachment's id, never from anything the client
sent, so no upload can choose or guess a path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator

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


def delete(names: Iterable[str], *, strict: bool = False) -> None:
    """Delete stored files (one already gone is no error). Best effort unless ``strict``: the
    storage may be briefly away, and attachments.removal tries again durably; ``strict`` raises
    once every file was tried if one of them could not be deleted."""
    failed: list[str] = []
    for name in names:
        if not name:
            continue
        try:
            storage().delete(name)
        except Exception:
            log.exception("could not delete the attachment file %s", name)
            failed.append(name)
    if strict and failed:
        raise OSError(f"could not delete {len(failed)} attachment file(s), {failed[0]} first")


def stored_names() -> Iterator[str]:
    """The name of every file in the attachments' folders (blobs and thumbnails)."""
    store = storage()
    try:
        folders, _ = store.listdir("attachments")
    except FileNotFoundError:
        return  # nothing was ever stored
    for folder in folders:
        for name in store.listdir(f"attachments/{folder}")[1]:
            yield f"attachments/{folder}/{name}"


def attachment_of(name: str) -> uuid.UUID | None:
    """The attachment a stored file belongs to (by its name), or None for a name Parley never makes."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".thumb")
    try:
        return uuid.UUID(stem)
    except ValueError:
        return None
