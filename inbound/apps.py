from django.apps import AppConfig


class InboundConfig(AppConfig):
    """Inbound webhooks from external messaging channels."""

    name = "inbound"

    def ready(self) -> None:
        from inbound import checks  # noqa: F401  (registers the system checks)
