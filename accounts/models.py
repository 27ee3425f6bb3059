from __future__ import annotations

from django.conf import settings
from django.db import models


class AgentToken(models.Model):
    """An agent's API token. Only its SHA-256 is stored; revoking sets revoked_at."""

    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_tokens")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token of {self.user} created {self.created_at:%Y-%m-%d}"


class AgentSocket(models.Model):
    """An open dashboard socket of an agent: the agent is online while one exists (accounts.presence)."""

    socket_id = models.CharField(max_length=64, primary_key=True)
    agent_id = models.CharField(max_length=64, db_index=True)
    connected_at = models.DateTimeField()


class AgentProfile(models.Model):
    """What an agent shows of themselves: the name customers and the team see
    (accounts.profiles). Blank until the agent chooses one; the login
    username is never shown in its place."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="agent_profile"
    )
    display_name = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class PopOutSession(models.Model):
    """A window the website widget signed in (``POST /widget/open/``): the chat
    page's cookie it set names this row and stands only while the row exists,
    so the widget's logout, in a frame of another site that cannot clear that
    cookie, signs the window out here (accounts.popouts). Only the SHA-256 of
    the cookie's key is stored."""

    key_hash = models.CharField(max_length=64, primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"pop-out of {self.customer_id} from {self.created_at:%Y-%m-%d %H:%M}"


class PopOutPushSubscription(models.Model):
    """A push subscription registered from a pop-out window: deleted when its
    window is signed out, so that browser stops showing the customer's news."""

    session = models.ForeignKey(PopOutSession, on_delete=models.CASCADE, related_name="push_subscriptions")
    subscription_id = models.UUIDField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "subscription_id"], name="popout_push_subscription_once"),
        ]
