from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who is calling: agents (staff users, API tokens), customers (tokens, cookie)."""

    name = "accounts"
