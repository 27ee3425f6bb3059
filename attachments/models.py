"""The attachments context's own table: one row per uploaded file.

This is not a read model: it is the catalogue of stored blobs, written at
upload and when a message claims the file. What a message shows about its
attachments (name, type, size, thumbnail) is in the log's MessageSent
event, so the read models are rebuilt without this table.
"""

from __future__ import annotations

from django.db import models


class Attachment(models.Model):
    id = models.UUIDField(primary_key=True)
    #: Who uploaded it ("customer" with the customer's UUID, or "agent" with the user id):
    #: only they can send it.
    uploader_kind = models.CharField(max_length=10)
    uploader_id = models.CharField(max_length=64)
    #: The client's file name, cleaned (attachments.services.clean_name); only ever shown, never a path.
    name = models.CharField(max_length=200)
    #: Sniffed from the bytes (attachments.sniff), never the client's claim.
    content_type = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    #: Names in the "attachments" storage; ``thumbnail`` is "" for files that are not images.
    blob = models.CharField(max_length=200)
    thumbnail = models.CharField(max_length=200, blank=True, default="")
    uploaded_at = models.DateTimeField()
    #: Set once, by the message that sends it (null while unsent; unsent rows expire after 24 h).
    message_id = models.UUIDField(null=True, blank=True, db_index=True)
    customer_id = models.UUIDField(null=True, blank=True)

    class Meta:
        db_table = "parley_attachments"
        indexes = [models.Index(fields=["uploader_kind", "uploader_id"], name="attachments_by_uploader")]
