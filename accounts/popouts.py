"""The windows the website widget signs in, and signing them out.

The widget's frame is on another site: its "Open in a new window" and "Get
notifications" post its token to Parley's own ``/widget/open/``, which signs
that new window in with the chat page's first-party cookie (web.widget).
The frame cannot clear that cookie (a frame of another site reads and
writes no first-party cookie), so the cookie names a pop-out session too,
and stands only while the session exists (accounts.principals): the
widget's logout deletes its customer's sessions here, and with them the
push subscriptions registered from those windows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import transaction

from accounts.models import PopOutPushSubscription, PopOutSession


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def popout_open(*, customer_id: uuid.UUID) -> str:
    """A new pop-out session of ``customer_id``: the key its cookie carries.

    Every session older than a customer token (whose cookie has expired
    with it: a window closed without "Leave", a customer who never came
    back) is purged on the way, whoever's it was, so the table holds only
    the windows opened within a token's lifetime."""
    now = _now()
    PopOutSession.objects.filter(created_at__lt=now - dt.timedelta(seconds=settings.CUSTOMER_TOKEN_MAX_AGE)).delete()
    key = secrets.token_urlsafe(32)
    PopOutSession.objects.create(key_hash=_hash(key), customer_id=customer_id, created_at=now)
    return key


def popout_session(key: str, customer_id: uuid.UUID) -> str | None:
    """The id of ``customer_id``'s pop-out session of this key while it stands, else None."""
    key_hash = _hash(key)
    return key_hash if PopOutSession.objects.filter(key_hash=key_hash, customer_id=customer_id).exists() else None


def popout_sessions_live(session_ids: set[str]) -> set[str]:
    """Those of these session ids that still stand."""
    return set(PopOutSession.objects.filter(key_hash__in=session_ids).values_list("key_hash", flat=True))


def popout_subscribed(*, session_id: str, subscription_id: uuid.UUID) -> bool:
    """Remember that a push subscription was registered from this pop-out
    session; False if the session was signed out meanwhile (the caller then
    drops the subscription)."""
    with transaction.atomic():
        # Locked, so that a sign-out either waits for this link or comes first and is seen.
        if not PopOutSession.objects.select_for_update().filter(key_hash=session_id).exists():
            return False
        PopOutPushSubscription.objects.get_or_create(session_id=session_id, subscription_id=subscription_id)
    return True


def popout_sign_out(*, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """Sign out every window the widget opened for ``customer_id``: the push
    subscriptions registered from them, for the caller to delete."""
    return _sign_out(customer_id=customer_id)


def popout_leave(*, session_id: str) -> list[uuid.UUID]:
    """Sign out the one window of this session (its page's "Leave"): the push
    subscriptions registered from it, for the caller to delete."""
    return _sign_out(key_hash=session_id)


def _sign_out(**which: object) -> list[uuid.UUID]:
    with transaction.atomic():
        sessions = list(PopOutSession.objects.select_for_update().filter(**which).values_list("key_hash", flat=True))
        if not sessions:
            return []
        subscriptions = sorted(set(
            PopOutPushSubscription.objects.filter(session_id__in=sessions).values_list("subscription_id", flat=True)
        ))
        PopOutSession.objects.filter(key_hash__in=sessions).delete()
    return subscriptions
