from django.apps import AppConfig


class AttachmentsConfig(AppConfig):
    """Files sent with messages: upload, type sniffing, thumbnails, storage, expiry of unsent ones."""

    name = "attachments"
