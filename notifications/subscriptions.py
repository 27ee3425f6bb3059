"""Push subscription use cases: register (idempotent per endpoint) and delete.

The server will POST to a subscription's endpoint, so the endpoint is the
dangerous part of the input: it must be https on a known push service
(``PUSH_ENDPOINT_ALLOWED_HOSTS``), or plain http on a host named in
``PUSH_ENDPOINT_INSECURE_HOSTS`` (a local push service in tests). Anything
else is refused before a row is written.

An endpoint is stored, compared and posted to in one normal form
(``check_endpoint``): scheme and host lower-case, no trailing dot on the
host, no default port, an empty path as ``/``; path and query exactly as
given. So ``https://FCM.googleapis.com:443/x`` and ``https://fcm.googleapis.com./x``
are the device ``https://fcm.googleapis.com/x``, not two. Refused outright:
user info, fragments, non-ASCII (a host must come in its ASCII, punycode,
form; it is not mapped, so no lookalike becomes an allowed name), hosts that
are not plain DNS names, numbers that some resolver would read as an address
(``2130706433``, ``127.1``, ``0x7f.0.0.1``), and IP addresses that a setting
does not name exactly (a ``*.`` entry never matches one).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from urllib3.util import parse_url

from kernel.errors import DomainError
from notifications.models import PushDelivery, PushSubscription
from notifications.vapid import InvalidKey, check_auth_secret, check_p256dh

MAX_ENDPOINT_CHARS = 2048
#: A customer with more devices than this loses the least recently registered one.
MAX_SUBSCRIPTIONS_PER_CUSTOMER = 20

# Printable ASCII without spaces, quotes, angle brackets or backslashes: no
# room for a URL that one parser reads differently from another.
_SAFE_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
#: One label of a DNS name (lower-case letters, digits, inner hyphens).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: A last label that URL parsers and resolvers read as (part of) an IPv4 address.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,5}")
DEFAULT_PORTS = {"https": 443, "http": 80}


class SubscriptionError(DomainError):
    """A refused registration."""

    code = "invalid_subscription"


class SubscriptionNotFound(SubscriptionError):
    code = "subscription_not_found"
    status = 404

    def __init__(self, subscription_id: object) -> None:
        super().__init__(f"no push subscription {subscription_id}")


@dataclass(frozen=True)
class DeviceRegistration:
    subscription: PushSubscription
    created: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address if ``host`` (no brackets) is an IP literal, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host_matches(host: str, port: int | None, entries: Iterable[str], default_port: int) -> bool:
    """Whether ``host`` (normalised; an IPv6 address without brackets) and ``port``
    are named by one of ``entries`` (``host``, ``host:port``, ``[v6]``,
    ``[v6]:port`` or ``*.suffix``). An IP address matches only an entry
    naming that address: never a ``*.`` entry."""
    address = _ip(host)
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            if rest and not rest.startswith(":"):
                continue
            entry_port = rest[1:]
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        else:
            name, entry_port = entry, ""
        name = name.removesuffix(".")
        if entry_port:
            if not entry_port.isdigit() or (port or default_port) != int(entry_port):
                continue
        elif port not in (None, default_port):
            continue
        if address is not None:
            if _ip(name) == address:
                return True
        elif name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def _refused(why: str = "") -> SubscriptionError:
    detail = "the endpoint must be an https URL of a known push service"
    return SubscriptionError(f"{detail}; {why}" if why else detail, code="push_endpoint_not_allowed")


def _split_host(authority: str) -> tuple[str, str, str | None]:
    """(host to compare, host as written in the normal form, port text or None)."""
    if authority.startswith("["):
        literal, _, rest = authority[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise _refused("its host is not a DNS name or an IP address")
        if "%" in literal:  # a zone id names an interface of this machine
            raise _refused("its host is an IPv6 address with a zone")
        try:
            v6 = ipaddress.IPv6Address(literal)
        except ValueError:
            raise _refused("its host is not a DNS name or an IP address") from None
        return v6.compressed, f"[{v6.compressed}]", rest[1:] if rest else None
    if authority.count(":") > 1:
        raise _refused("its host is not a DNS name or an IP address")
    name, colon, port_text = authority.partition(":")
    name = name.lower()
    if name.endswith("."):  # one trailing dot: the same name, fully qualified
        name = name[:-1]
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _refused("its host is not a DNS name or an IP address")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # URL parsers and resolvers read 2130706433, 127.1 or 0x7f.0.0.1 as
        # 127.0.0.1: only the dotted-decimal form is taken, and as an address.
        try:
            v4 = ipaddress.IPv4Address(name)
        except ValueError:
            raise _refused("its host is a number but not an IPv4 address in dotted-decimal form") from None
        if str(v4) != name:
            raise _refused("its host is an IPv4 address not in dotted-decimal form")
    return name, name, port_text if colon else None


def check_endpoint(endpoint: str) -> str:
    """The endpoint in its normal form if the server may POST to it, else SubscriptionError.

    Normal form: scheme and host lower-case, one trailing dot of the host
    dropped, the scheme's default port dropped, IPv6 compressed, an empty
    path as ``/``; path and query exactly as given (they are case-sensitive).
    """
    if not endpoint or len(endpoint) > MAX_ENDPOINT_CHARS:
        raise _refused(f"it is empty or longer than {MAX_ENDPOINT_CHARS} characters")
    if not endpoint.isascii():
        raise _refused("it has non-ASCII characters (a host must be in its ASCII, punycode form)")
    if not _SAFE_URL.fullmatch(endpoint):
        raise _refused("it has characters a URL parser might read two ways")
    if "#" in endpoint:
        raise _refused("it has a fragment")
    scheme, sep, rest = endpoint.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise _refused("it is not an https:// (or allowed http://) URL")
    # The authority runs to the first "/" or "?" (no "#" or "\\" is left).
    cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0] or [len(rest)])
    authority, target = rest[:cut], rest[cut:]
    if "@" in authority:
        raise _refused("it has user info (user@host)")
    host, written, port_text = _split_host(authority)
    port: int | None = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) <= 65535:
            raise _refused("its port is not a port number")
        port = int(port_text)
    if port == DEFAULT_PORTS[scheme]:
        port = None
    entries = settings.PUSH_ENDPOINT_ALLOWED_HOSTS if scheme == "https" else settings.PUSH_ENDPOINT_INSECURE_HOSTS
    if not _host_matches(host, port, entries, DEFAULT_PORTS[scheme]):
        if _ip(host) is not None:
            raise _refused("its host is an IP address this server was not told to post to")
        raise _refused()
    netloc = written if port is None else f"{written}:{port}"
    normal = f"{scheme}://{netloc}{target if target.startswith('/') else '/' + target}"
    # What sends it reads it the same way: same host, same port, nothing else.
    parsed = parse_url(normal)
    if (parsed.host, parsed.port, parsed.auth, parsed.fragment) != (written, port, None, None):
        raise _refused("it has characters a URL parser might read two ways")
    return normal


def check_keys(p256dh: str, auth: str) -> None:
    try:
        check_p256dh(p256dh)
    except InvalidKey as exc:
        raise SubscriptionError(f"keys.p256dh: {exc}", code="invalid_push_keys") from None
    try:
        check_auth_secret(auth)
    except InvalidKey as exc:
        raise SubscriptionError(f"keys.auth: {exc}", code="invalid_push_keys") from None


def subscription_register(*, customer_id: uuid.UUID, endpoint: str, p256dh: str, auth: str) -> DeviceRegistration:
    """Store this device's subscription for ``customer_id``; the same endpoint is the same subscription.

    A device that another customer had registered (a shared browser) moves
    to this customer, and what was still queued for the previous owner is
    dropped with it, so nobody's message previews reach another person.
    """
    normal = check_endpoint(endpoint)
    check_keys(p256dh, auth)
    for _ in range(3):
        try:
            return _upsert(customer_id, normal, p256dh, auth, given=endpoint)
        except IntegrityError:  # a simultaneous first registration of this endpoint won
            continue
    return _upsert(customer_id, normal, p256dh, auth, given=endpoint)


@transaction.atomic
def _upsert(customer_id: uuid.UUID, endpoint: str, p256dh: str, auth: str, *, given: str = "") -> DeviceRegistration:
    """Register the device at ``endpoint`` (normalised). ``given``, the endpoint
    as the browser sent it, finds a row stored before endpoints were
    normalised; that row is rewritten to the normal form."""
    now = _now()
    existing = PushSubscription.objects.select_for_update().filter(endpoint=endpoint).first()
    if existing is None and given and given != endpoint:
        existing = PushSubscription.objects.select_for_update().filter(endpoint=given).first()
        if existing is not None:
            existing.endpoint = endpoint
    if existing is None:
        # A device we never pushed to shows no badge of ours: 0, so a
        # badge-only 0 is not sent to it for nothing.
        sub = PushSubscription.objects.create(
            customer_id=customer_id, endpoint=endpoint, p256dh=p256dh, auth=auth,
            created_at=now, updated_at=now, badge_unread=0,
        )
        _evict_beyond_limit(customer_id)
        return DeviceRegistration(sub, created=True)
    if existing.customer_id != customer_id:
        PushDelivery.objects.filter(subscription=existing).delete()
        existing.customer_id = customer_id
        existing.created_at = now  # a new owner: it hears about what happens from now on
        # What the device shows now is the previous owner's: unknown to us.
        existing.badge_unread = existing.badge_tx = existing.badge_position = None
    existing.p256dh, existing.auth, existing.updated_at = p256dh, auth, now
    existing.save()
    _evict_beyond_limit(customer_id)
    return DeviceRegistration(existing, created=False)


def _evict_beyond_limit(customer_id: uuid.UUID) -> None:
    stale = list(
        PushSubscription.objects.filter(customer_id=customer_id)
        .order_by("-updated_at", "-created_at")
        .values_list("pk", flat=True)[MAX_SUBSCRIPTIONS_PER_CUSTOMER:]
    )
    if stale:
        PushSubscription.objects.filter(pk__in=stale).delete()


def subscription_delete(*, customer_id: uuid.UUID, subscription_id: uuid.UUID) -> None:
    """Forget one of this customer's devices (and what was queued for it)."""
    deleted, _ = PushSubscription.objects.filter(pk=subscription_id, customer_id=customer_id).delete()
    if not deleted:
        raise SubscriptionNotFound(subscription_id)


def subscriptions_delete(*, customer_id: uuid.UUID, subscription_ids: Iterable[uuid.UUID]) -> None:
    """Forget those of these devices that are still this customer's (a device
    since registered by another customer is theirs now, and stays)."""
    ids = list(subscription_ids)
    if ids:
        PushSubscription.objects.filter(pk__in=ids, customer_id=customer_id).delete()
