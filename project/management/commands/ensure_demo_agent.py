"""Create the demo agent for `make run` if no agent exists, and print its login."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a demo agent (staff user) when there is none; print its login."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_staff=True).exists():
            self.stdout.write("Agents exist; log in at http://127.0.0.1:8000/accounts/login/")
            return
        password = os.environ.get("PARLEY_DEMO_AGENT_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser("agent", "agent@example.com", password, first_name="Demo", last_name="Agent")
        self.stdout.write(
            "Demo agent created. Log in at http://127.0.0.1:8000/accounts/login/ "
            f"as username 'agent', password '{password}' (also saved in .env as PARLEY_DEMO_AGENT_PASSWORD)."
        )
