from django.apps import AppConfig


class WebConfig(AppConfig):
    """The two pages people use: the customer chat and the agent dashboard."""

    name = "web"
