"""Which URLs Parley may POST webhooks to: the SSRF guard.

A webhook URL is chosen by whoever holds the integration key, and the
server POSTs to it from inside the network. So it must be ``https``, and
its host must resolve only to public addresses: never loopback, private,
link-local, multicast, unspecified or reserved ones (``169.254.169.254``,
the cloud metadata service, is link-local). The check runs at
registration and again before every delivery, because DNS can change
between the two; the delivery then connects to the very address it
checked (outbound.transport pins it), so a second lookup cannot swap it.

``WEBHOOK_INSECURE_HOSTS`` lists exact ``host:port`` pairs exempt from both
rules (plain ``http`` allowed, any address): local receivers in tests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from kernel.errors import DomainError

#: host, port -> the addresses it resolves to (the seam tests fill with a fake).
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2048


class WebhookUrlNotAllowed(DomainError):
    code = "webhook_url_not_allowed"
    status = 400


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # as named in the URL (lower-case; IPv6 without brackets)
    port: int
    path: str  # path and query, as sent
    insecure: bool  # listed in WEBHOOK_INSECURE_HOSTS

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlNotAllowed(f"the host {host!r} does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse(url: str) -> Target:
    """The URL's parts, or a refusal saying what is wrong with it (no lookup)."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlNotAllowed(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or c == "\\" or not c.isprintable() for c in url):
        raise WebhookUrlNotAllowed("the URL must be ASCII without spaces, backslashes or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlNotAllowed(f"the URL cannot be parsed: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise WebhookUrlNotAllowed("the URL must be https")  # no hint: no setting allows another scheme
    if "@" in parts.netloc:
        raise WebhookUrlNotAllowed("the URL must not carry user information")
    if parts.fragment or url.endswith("#"):
        raise WebhookUrlNotAllowed("the URL must not have a fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlNotAllowed("the URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    insecure = f"{host}:{port}" in _insecure_hosts()
    if parts.scheme != "https" and not insecure:
        raise WebhookUrlNotAllowed("the URL must be https" + local_hint(host, port))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, host, port, path, insecure)


def local_hint(host: str, port: int) -> str:
    """How a developer allows a receiver on their own machine (the refusal is right in production).

    Only for a receiver on this machine (localhost, a loopback address): a
    refusal of a private, link-local or metadata address suggests no way around it.
    """
    if not _on_this_machine(host):
        return ""
    return (f" (for a receiver in local development, add {host}:{port} to WEBHOOK_INSECURE_HOSTS in .env "
            "and restart)")


def _on_this_machine(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _insecure_hosts() -> set[str]:
    out = set()
    for entry in settings.WEBHOOK_INSECURE_HOSTS:
        host, _, port = entry.strip().lower().rpartition(":")
        out.add(f"{host.strip('[]')}:{port}")
    return out


#: Every block the IANA special-purpose registries (RFC 6890 and successors) do not call globally
#: reachable, written out rather than left to ``ipaddress.is_global``, which differs between Python
#: versions and calls some of them global (``192.0.0.0/24``, ``fec0::/10``, ``2002::/16`` in 3.11).
NON_GLOBAL = tuple(ipaddress.ip_network(block) for block in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/96", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20",
    "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
#: Prefixes that carry an IPv4 address inside an IPv6 one: the embedded address is checked too.
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo (server and client), NAT64."""
    out: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip in SIX_TO_FOUR and ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if ip in NAT64:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def forbidden(address: str) -> str | None:
    """Why Parley must not connect to this address (None: it may).

    Refused: every special-purpose block that is not globally reachable
    (NON_GLOBAL), whatever Python's ``is_global`` says, and any IPv6 address
    whose embedded IPv4 address (mapped, 6to4, Teredo, NAT64) would be.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded(ip):
            why = forbidden(str(inner))
            if why is not None:
                return f"{address} leads to {inner}: {why}"
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    for kind in ("loopback", "private", "link_local", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return f"{address} is a site-local address"
    if any(ip in block for block in NON_GLOBAL if block.version == ip.version) or not ip.is_global:
        return f"{address} is not a public address"
    return None


def addresses(target: Target, resolve: Resolver | None = None) -> list[str]:
    """The addresses to connect to, all checked; a refusal if any one is not allowed.

    Every address must pass: a name that resolves to a public and a private
    address is refused, not tried until the private one answers.
    """
    found = (resolve or system_resolver)(target.host, target.port)
    if not found:
        raise WebhookUrlNotAllowed(f"the host {target.host!r} does not resolve")
    if target.insecure:
        return found
    for address in found:
        why = forbidden(address)
        if why is not None:
            raise WebhookUrlNotAllowed(f"the host {target.host!r} resolves to a forbidden address: {why}"
                                       + local_hint(target.host, target.port))
    return found


def check(url: str, resolve: Resolver | None = None) -> Target:
    """Parse and resolve ``url`` as the registration does."""
    target = parse(url)
    addresses(target, resolve)
    return target
