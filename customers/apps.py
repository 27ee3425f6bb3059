from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"

    def ready(self) -> None:
        from customers import events  # noqa: F401  (registers the customer event types)
