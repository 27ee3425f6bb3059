"""Resolving a request or a websocket scope to the one party it speaks for."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core import signing
from django.db import transaction
from django.utils import timezone

from accounts.errors import AuthenticationFailed
from accounts.models import AgentToken
from accounts.popouts import popout_session, popout_sessions_live
from accounts.profiles import public_name
from accounts.tokens import PREFIX as CUSTOMER_TOKEN_PREFIX
from accounts.tokens import InvalidCustomerToken, verify_customer_token

AGENT_TOKEN_PREFIX = "pa_"
CUSTOMER_COOKIE = "parley_customer"
_COOKIE_SALT = "parley.accounts.customer-cookie"
#: Between the token and a pop-out session's key in the cookie: in neither's alphabet.
_POPOUT_SEP = "~"


@dataclass(frozen=True)
class Credential:
    """What an agent proved who they are with (an API token or a session), or
    the pop-out session a customer's cookie names (accounts.popouts).

    Kept by long-lived connections (websockets) so they can be closed when
    it stops standing (``revoked_among``).
    """

    kind: Literal["token", "session", "popout"]
    key: str  # the token's row id, the session key, or the pop-out session's id
    user_id: str  # the agent's, or the customer's for a pop-out


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``via_cookie`` means CSRF rules apply."""

    kind: Literal["customer", "agent"]
    id: str
    name: str
    via_cookie: bool = False
    credential: Credential | None = None

    @property
    def customer_id(self) -> uuid.UUID:
        assert self.kind == "customer"
        return uuid.UUID(self.id)


def agent_display_name(user: AbstractBaseUser) -> str:
    """The name an agent's requests and sockets act under: never the login username (accounts.profiles)."""
    return public_name(user)


def agent_principal(user: AbstractBaseUser, *, via_cookie: bool, credential: Credential | None = None) -> Principal:
    return Principal("agent", str(user.pk), agent_display_name(user), via_cookie=via_cookie, credential=credential)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_agent_token(user: AbstractBaseUser) -> str:
    key = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    AgentToken.objects.create(key_hash=_hash(key), user=user)  # type: ignore[misc]  # any user model
    return key


def revoke_agent_token(key: str) -> bool:
    return AgentToken.objects.filter(key_hash=_hash(key), revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ) == 1


def principal_from_token(token: str) -> Principal:
    """Resolve a bearer token of either kind; raises AuthenticationFailed."""
    if token.startswith(AGENT_TOKEN_PREFIX):
        row = (
            AgentToken.objects.select_related("user", "user__agent_profile")
            .filter(key_hash=_hash(token), revoked_at__isnull=True)
            .first()
        )
        if row is None or not row.user.is_active or not row.user.is_staff:
            raise AuthenticationFailed("the agent token is not valid")
        now = timezone.now()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            AgentToken.objects.filter(pk=row.pk).update(last_used_at=now)
        return agent_principal(row.user, via_cookie=False, credential=Credential("token", str(row.pk), str(row.user.pk)))
    if token.startswith(CUSTOMER_TOKEN_PREFIX):
        return Principal("customer", str(verify_customer_token(token)), "")
    raise AuthenticationFailed("unrecognised token")


def customer_cookie_value(token: str, *, popout: str = "") -> str:
    """What the chat page stores in its cookie: the customer token, signed again,
    with the key of the pop-out session it stands by, if the widget opened it."""
    return signing.get_cookie_signer(salt=_COOKIE_SALT).sign(f"{token}{_POPOUT_SEP}{popout}" if popout else token)


def principal_from_cookies(
    cookies: dict[str, str],
    user: AbstractBaseUser | AnonymousUser | None,
    *,
    session_key: str | None = None,
) -> Principal | None:
    """An agent's session, else the customer cookie, else None."""
    if user is not None and user.is_authenticated and getattr(user, "is_staff", False) and user.is_active:
        credential = Credential("session", session_key, str(user.pk)) if session_key else None
        return agent_principal(user, via_cookie=True, credential=credential)  # type: ignore[arg-type]
    raw = cookies.get(CUSTOMER_COOKIE)
    if not raw:
        return None
    try:
        value = signing.get_cookie_signer(salt=_COOKIE_SALT).unsign(raw)
        token, _, popout = value.partition(_POPOUT_SEP)
        customer_id = verify_customer_token(token)
    except (signing.BadSignature, InvalidCustomerToken):
        return None
    credential = None
    if popout:
        # A window the widget opened: signed in while its session stands.
        session_id = popout_session(popout, customer_id)
        if session_id is None:
            return None
        credential = Credential("popout", session_id, str(customer_id))
    return Principal("customer", str(customer_id), "", via_cookie=True, credential=credential)


def authenticate_agent(username: str, password: str) -> AbstractBaseUser | None:
    from django.contrib.auth import authenticate

    user = authenticate(username=username, password=password)
    if user is None or not user.is_active or not getattr(user, "is_staff", False):
        return None
    return user




def revoked_among(credentials: Collection[Credential]) -> set[Credential]:
    """Those of ``credentials`` that no longer stand: the token was revoked,
    the session ended (signed out, expired), the user is no longer an
    active staff member, or the widget signed the pop-out window out. One
    transaction, a query per kind."""
    from django.contrib.auth import get_user_model

    if not credentials:
        return set()
    tokens = [c for c in credentials if c.kind == "token"]
    sessions = [c for c in credentials if c.kind == "session"]
    popouts = [c for c in credentials if c.kind == "popout"]
    with transaction.atomic():
        agent_ids = {c.user_id for c in credentials if c.kind != "popout"}
        agents = {
            str(pk)
            for pk in get_user_model()
            .objects.filter(pk__in=agent_ids, is_active=True, is_staff=True)
            .values_list("pk", flat=True)
        } if agent_ids else set()
        live_popouts = popout_sessions_live({c.key for c in popouts}) if popouts else set()
        live_tokens = {
            str(pk)
            for pk in AgentToken.objects.filter(pk__in=[int(c.key) for c in tokens], revoked_at__isnull=True).values_list(
                "pk", flat=True
            )
        } if tokens else set()
        live_sessions = _live_sessions({c.key for c in sessions}) if sessions else set()
    live = {"token": live_tokens, "session": live_sessions, "popout": live_popouts}
    return {
        c
        for c in credentials
        if (c.kind != "popout" and c.user_id not in agents) or c.key not in live[c.kind]
    }


def _live_sessions(keys: set[str]) -> set[str]:
    from importlib import import_module

    from django.conf import settings

    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        from django.contrib.sessions.models import Session

        return set(
            Session.objects.filter(session_key__in=keys, expire_date__gt=timezone.now()).values_list("session_key", flat=True)
        )
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return {k for k in keys if store().exists(k)}
