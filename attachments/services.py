"""The attachments context's services: upload, claim by a message, read for a download.

Called by the adapters (the API's views; chat's AttachmentCatalog port,
filled in project.adapters). Keyword-only, typed; no HTTP here.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from collections.abc import Sequence
from typing import IO

from django.db import transaction
from django.db.models import Q

from attachments import expiry, images, removal, storage
from attachments.errors import AttachmentAlreadySent, AttachmentTooLarge, AttachmentTypeNotAllowed, UnknownAttachment
from attachments.models import Attachment
from attachments.sniff import IMAGE_TYPES, sniff
from attachments.uploads import max_bytes, too_large
from eventstore import keys

MAX_NAME_CHARS = 200


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def clean_name(raw: str) -> str:
    """The client's file name as shown: its last path segment, without control or
    formatting characters (a right-to-left override could disguise ``gpj.exe``),
    at most MAX_NAME_CHARS characters with the extension kept."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")).strip()
    name = name.lstrip(".") or "attachment"
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 16 else ""
        name = (stem if dot else name)[: MAX_NAME_CHARS - len(ext) - 1] + ("." + ext if ext else "")
    return name


#: The extensions a file of each accepted type may keep; the first is the one it gets otherwise.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": ("png",), "image/jpeg": ("jpg", "jpeg"), "image/gif": ("gif",), "image/webp": ("webp",),
    "application/pdf": ("pdf",), "text/plain": ("txt", "text", "log"),
}


def name_for_type(name: str, content_type: str) -> str:
    """The name with an extension that matches the sniffed type: ``invoice.html`` sent as
    text is saved as ``invoice.txt``, so a browser never stores it under a name that runs
    when opened from disk (the client's name is shown, never trusted for the type)."""
    allowed = EXTENSIONS.get(content_type)
    if not allowed:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and ext.lower() in allowed:
        return name
    stem = stem if dot and stem else name
    return stem[: MAX_NAME_CHARS - len(allowed[0]) - 1] + "." + allowed[0]


def attachment_upload(
    *, uploader_kind: str, uploader_id: str, file: IO[bytes], name: str, size: int, now: dt.datetime | None = None,
) -> Attachment:
    """Store an uploaded file if its bytes are an accepted type, with a thumbnail for images.

    The file's type comes from its bytes (attachments.sniff); an image is
    decoded once to make the thumbnail, which refuses files that only look
    like images and decompression bombs. The row and its expiry timer are
    written in one transaction, after the files are stored; if that
    transaction fails, the files are removed again.
    """
    if size > max_bytes():
        raise too_large()
    data = file.read(max_bytes() + 1)
    if len(data) > max_bytes():  # the size the client reported was not the size it sent
        raise AttachmentTooLarge(too_large().detail)
    content_type = sniff(data)
    if content_type is None:
        raise AttachmentTypeNotAllowed("only PNG, JPEG, GIF and WebP images, PDF and plain text files are accepted")
    thumbnail = images.thumbnail(data) if content_type in IMAGE_TYPES else None
    attachment_id = uuid.uuid4()
    stored = [storage.save(storage.blob_name(attachment_id), data)]
    if thumbnail is not None:
        stored.append(storage.save(storage.thumbnail_name(attachment_id), thumbnail.data))
    try:
        with transaction.atomic():
            if uploader_kind == "customer":
                # Nothing of an erased customer is stored again, and an erasure that commits
                # meanwhile waits for this row, so that its deletion of their files finds it.
                keys.hold(uploader_id)
            row = Attachment.objects.create(
                id=attachment_id, uploader_kind=uploader_kind, uploader_id=uploader_id, name=name_for_type(clean_name(name), content_type),
                content_type=content_type, size=len(data), blob=stored[0],
                thumbnail=stored[1] if thumbnail is not None else "", uploaded_at=now or _now(),
            )
            expiry.schedule(row)
    except BaseException:
        storage.delete(stored)
        raise
    return row


def attachments_claim(
    attachment_ids: Sequence[uuid.UUID], *, uploader_kind: str, uploader_id: str, message_id: uuid.UUID,
    customer_id: uuid.UUID,
) -> list[Attachment]:
    """Give the attachments to a message, in the caller's transaction; their rows, in the order asked.

    Each must have been uploaded by this sender and not be sent with another
    message (an attachment belongs to exactly one). Already given to this
    very message is fine: that is a retried send. Rows are locked, so two
    messages racing for one attachment cannot both have it, and the expiry
    timer cannot delete it under the send.
    """
    rows = {
        row.id: row
        for row in Attachment.objects.select_for_update().filter(
            id__in=list(attachment_ids), uploader_kind=uploader_kind, uploader_id=uploader_id)
    }
    for attachment_id in attachment_ids:
        row = rows.get(attachment_id)
        if row is None:
            raise UnknownAttachment(f"no attachment {attachment_id} uploaded by you (it may have expired)")
        if row.message_id is not None and row.message_id != message_id:
            raise AttachmentAlreadySent(f"the attachment {attachment_id} was sent with another message")
    new = [row.id for row in rows.values() if row.message_id is None]
    if new:
        Attachment.objects.filter(id__in=new).update(message_id=message_id, customer_id=customer_id)
        expiry.cancel(new)
        for attachment_id in new:
            rows[attachment_id].message_id, rows[attachment_id].customer_id = message_id, customer_id
    return [rows[attachment_id] for attachment_id in attachment_ids]


def attachments_erase(*, customer_id: uuid.UUID) -> int:
    """Delete every file of an erased customer's conversation (both sides' messages) and their
    unsent uploads; returns how many."""
    return attachments_erase_many(customer_ids=[customer_id])


def attachments_erase_many(*, customer_ids: Sequence[uuid.UUID]) -> int:
    """``attachments_erase`` for several customers in one transaction. The files go once the
    rows' deletion commits, and again until they are gone (attachments.removal)."""
    with transaction.atomic():
        rows = list(Attachment.objects.select_for_update().filter(
            Q(customer_id__in=list(customer_ids))
            | Q(uploader_kind="customer", uploader_id__in=[str(c) for c in customer_ids])))
        Attachment.objects.filter(id__in=[row.id for row in rows]).delete()
        expiry.cancel([row.id for row in rows])
        removal.delete_after_commit(name for row in rows for name in (row.blob, row.thumbnail))
    return len(rows)


def attachments_sweep(*, batch: int = 500) -> int:
    """Delete every stored file that no attachment row names; returns how many.

    Such files are left by a restore (media backed up after the database
    dump it is restored with) and hold what an erasure may have deleted
    since. Only with every Parley process stopped: an upload stores its
    file just before its row commits (docs/operations.md).
    """
    deleted = 0
    names = list(storage.stored_names())
    for i in range(0, len(names), batch):
        chunk = names[i:i + batch]
        owners = {name: storage.attachment_of(name) for name in chunk}
        known = set(Attachment.objects.filter(id__in=[a for a in owners.values() if a]).values_list("id", flat=True))
        orphans = [name for name, owner in owners.items() if owner not in known]
        storage.delete(orphans, strict=True)
        deleted += len(orphans)
    return deleted


def attachment_for(attachment_id: uuid.UUID, *, viewer_kind: str, viewer_id: str) -> Attachment | None:
    """The attachment if this viewer may download it, else None (the API answers 404 either way).

    A sent attachment: the conversation's customer, every agent, and the
    host application ("integration": the links of an export). An unsent
    one: its uploader only.
    """
    row = Attachment.objects.filter(id=attachment_id).first()
    if row is None:
        return None
    if row.message_id is None:
        return row if (row.uploader_kind, row.uploader_id) == (viewer_kind, viewer_id) else None
    if viewer_kind in ("agent", "integration") or (viewer_kind == "customer" and str(row.customer_id) == viewer_id):
        return row
    return None


def open_file(row: Attachment, *, thumbnail: bool = False) -> IO[bytes]:
    return storage.storage().open(row.thumbnail if thumbnail else row.blob, "rb")


def thumbnail_type(row: Attachment) -> str:
    """The thumbnail's type: JPEG for a JPEG, PNG for the other images (attachments.images)."""
    return "image/jpeg" if row.content_type == "image/jpeg" else "image/png"
