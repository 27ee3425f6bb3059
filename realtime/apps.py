from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """Websockets: the consumer, the per-process dispatcher, the fan-out and every client frame."""

    name = "realtime"
