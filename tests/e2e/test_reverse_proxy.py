"""Parley as docs/deploy.md runs it: Debian's nginx with docs/deploy/nginx.conf
(TLS, websocket upgrade, X-Forwarded-For/-Proto) in front of two Daphne
processes and a `runworkers` process, all with production settings.

The shipped config is used as it is, but for the values it marks
"# test replaces" (ports, certificate, server name, the proxy's source
address); the test fails if any of those is no longer there to replace.
nginx connects to Daphne from 127.0.0.2, the only trusted proxy, so that a
client on 127.0.0.1 talking to Daphne directly is an untrusted peer, and
clients can reach nginx from addresses of their own (127.0.0.3, ...).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from tests.e2e.conftest import ROOT, Stack, free_port, start_stack, stop_stack

pytestmark = pytest.mark.e2e

CONFIG = ROOT / "docs" / "deploy" / "nginx.conf"
PROXY_ADDRESS = "127.0.0.2"
HOST = "127.0.0.1"
YEAR = 365 * 24 * 3600
SIGNUPS_PER_HOUR = 2


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


@dataclass
class Proxied:
    stack: Stack
    https_port: int
    http_port: int
    tls: ssl.SSLContext
    access_log: Path

    @property
    def origin(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                *, source: str = "127.0.0.1") -> Response:
        """One request to nginx over TLS (verified against the test's certificate), from ``source``."""
        conn = http.client.HTTPSConnection(HOST, self.https_port, context=self.tls, timeout=15,
                                           source_address=(source, 0))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, r.headers, r.read())
        finally:
            conn.close()

    def api(self, method: str, path: str, payload: object | None = None, token: str | None = None) -> Response:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.request(method, path, json.dumps(payload).encode() if payload is not None else None, headers)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:  # never a skip: .ci/run installs it
        pytest.fail("nginx is required for the reverse-proxy test (apt-get install nginx)")
    return found


def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=IP:{HOST},DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def site_config(upstreams: list[int], http_port: int, https_port: int, cert: Path, key: Path, access_log: Path) -> str:
    """docs/deploy/nginx.conf with the marked values made this test's."""
    text = CONFIG.read_text()
    replacements = [
        ("server 127.0.0.1:8001 max_fails=0;", f"server 127.0.0.1:{upstreams[0]} max_fails=0;"),
        ("server 127.0.0.1:8002 max_fails=0;", f"server 127.0.0.1:{upstreams[1]} max_fails=0;"),
        ("listen 80;", f"listen {HOST}:{http_port};"),
        ("listen 443 ssl;", f"listen {HOST}:{https_port} ssl;"),
        ("/etc/letsencrypt/live/support.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/support.example.com/privkey.pem", str(key)),
        ("server_name support.example.com;", f"server_name {HOST};"),
        ("proxy_bind 127.0.0.1;", f"proxy_bind {PROXY_ADDRESS};"),
        ("access_log /var/log/nginx/parley.access.log parley;", f"access_log {access_log} parley;"),
    ]
    for old, new in replacements:
        assert old in text, f"docs/deploy/nginx.conf no longer has {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


def main_config(tmp: Path, site: Path) -> str:
    """What /etc/nginx/nginx.conf gives a site on Debian, confined to ``tmp``: its access log in
    nginx's default format (the request line as sent), which the site's own replaces."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 2;
daemon off;
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'} info;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp / 'access.log'};
{temp}
    include {site};
}}
"""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    if not os.environ.get("REDIS_URL"):
        pytest.fail("the reverse-proxy test runs the production shape, which needs REDIS_URL")
    nginx = nginx_binary()
    tmp = tmp_path_factory.mktemp("proxy")
    cert, key = self_signed(tmp)
    http_port, https_port = free_port(), free_port()
    stack, drop = start_stack(
        tmp / "stack", web=2, separate_workers=True,
        extra_env={
            "PARLEY_HTTPS": "1",
            "PARLEY_TRUSTED_PROXIES": PROXY_ADDRESS,
            "ALLOWED_HOSTS": HOST,
            "PARLEY_VISITOR_SIGNUPS_PER_HOUR": str(SIGNUPS_PER_HOUR),
        },
    )
    site = tmp / "parley.conf"
    site.write_text(site_config([int(u.rsplit(":", 1)[1]) for u in stack.urls], http_port, https_port, cert, key,
                                tmp / "parley.access.log"))
    main = tmp / "nginx.conf"
    main.write_text(main_config(tmp, site))
    test = subprocess.run([nginx, "-t", "-c", str(main)], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    proc = subprocess.Popen([nginx, "-c", str(main)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    tls = ssl.create_default_context(cafile=str(cert))
    p = Proxied(stack, https_port, http_port, tls, tmp / "parley.access.log")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if p.request("GET", "/healthz").status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.2)
        yield p
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        stop_stack(stack)
        drop()


STATIC_URL = re.compile(r"""(?:href|src)="(/static/[^"]+)\"""")
MODULE_IMPORT = re.compile(r"""from\s*"(\./[^"]+)\"""")


def customer_page(proxied: Proxied) -> str:
    """The chat page as a customer opens it: the host application's link with a token, then the page."""
    key = proxied.stack.env["PARLEY_INTEGRATION_KEY"]
    r = proxied.api("POST", "/api/v1/customers", {"name": "Page Patron", "external_id": str(uuid.uuid4())}, token=key)
    assert r.status == 201, r.body
    link = proxied.request("GET", f"/chat/?token={r.json()['token']}")
    assert link.status == 302, link.status
    cookie = next(c.split(";")[0] for c in link.header_all("Set-Cookie") if c.startswith("parley_customer="))
    page = proxied.request("GET", "/chat/", headers={"Cookie": cookie})
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    return page.body.decode()


def agent_page(proxied: Proxied) -> str:
    """The dashboard as an agent reaches it: the login form, then /agent/."""
    form = proxied.request("GET", "/accounts/login/?next=/agent/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body.decode()).group(1)
    cookie = next(c.split(";")[0] for c in form.header_all("Set-Cookie") if c.startswith("csrftoken="))
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": csrf, "username": proxied.stack.agent_username,
                                   "password": proxied.stack.agent_password, "next": "/agent/"}).encode()
    login = proxied.request("POST", "/accounts/login/", body, {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "Origin": proxied.origin,
        "Referer": f"{proxied.origin}/accounts/login/"})
    assert login.status == 302 and login.headers["Location"] == "/agent/", (login.status, login.body[:500])
    session = next(c.split(";")[0] for c in login.header_all("Set-Cookie") if c.startswith("sessionid="))
    page = proxied.request("GET", "/agent/", headers={"Cookie": session})
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    return page.body.decode()


def test_both_pages_arrive_complete_with_hashed_cached_static_files(proxied: Proxied):
    pages = {"/chat/": customer_page(proxied), "/agent/": agent_page(proxied)}
    for path, html in pages.items():
        assert re.search(r'<script type="module" src="/static/web/js/\w+\.[0-9a-f]{12}\.js"', html), path
    assets = {u for html in pages.values() for u in STATIC_URL.findall(html)}
    assert any(u.endswith(".css") for u in assets), assets
    seen_modules: set[str] = set()
    pending = [u for u in assets]
    while pending:
        url = pending.pop()
        r = proxied.request("GET", url, headers={"Accept-Encoding": "br, gzip"})
        assert r.status == 200, url
        # Content-hashed names (name.0123456789ab.ext), cached for a year, compressed where it pays.
        assert re.search(r"\.[0-9a-f]{12}\.\w+$", url), url
        cache_control = {d.strip() for d in r.headers["Cache-Control"].split(",")}
        assert {"public", "immutable"} <= cache_control and f"max-age={10 * YEAR}" in cache_control, url
        assert int(re.search(r"max-age=(\d+)", r.headers["Cache-Control"]).group(1)) >= YEAR
        kind = r.headers["Content-Type"]
        if url.endswith(".css"):
            assert kind.startswith("text/css") and r.headers["Content-Encoding"] in ("br", "gzip")
        if url.endswith(".js"):
            assert "javascript" in kind
            # A module's imports are rewritten to hashed names too (else the page loads it twice).
            source = proxied.request("GET", url).body.decode()
            for relative in MODULE_IMPORT.findall(source):
                target = urllib.parse.urljoin(url, relative)
                if target not in seen_modules:
                    seen_modules.add(target)
                    pending.append(target)
    assert seen_modules, "no module imports followed: the pages load no ES modules?"
    # The service worker keeps its stable URL and its scope over the site.
    sw = proxied.request("GET", "/sw.js")
    assert sw.status == 200 and "javascript" in sw.headers["Content-Type"]
    assert sw.headers["Service-Worker-Allowed"] == "/" and sw.headers["Cache-Control"] == "no-cache"


def test_https_is_known_through_the_proxy_and_plain_http_is_redirected(proxied: Proxied):
    r = proxied.request("GET", "/accounts/login/")
    assert r.status == 200
    assert r.headers["Strict-Transport-Security"].startswith(f"max-age={YEAR}")
    cookies = r.header_all("Set-Cookie")
    assert cookies and all("Secure" in c for c in cookies), cookies

    # nginx's own plain-http server sends everyone to https.
    conn = http.client.HTTPConnection(HOST, proxied.http_port, timeout=10)
    conn.request("GET", "/chat/")
    plain = conn.getresponse()
    assert plain.status == 301 and plain.headers["Location"].startswith(f"https://{HOST}")
    conn.close()

    # Straight to Daphne, from an address that is not the proxy: its claim to
    # be https is not believed, so Parley redirects (health checks excepted).
    direct = urllib.parse.urlsplit(proxied.stack.url)
    conn = http.client.HTTPConnection(direct.hostname, direct.port, timeout=10)
    conn.request("GET", "/accounts/login/", headers={"X-Forwarded-Proto": "https", "Host": HOST})
    forged = conn.getresponse()
    forged.read()
    assert forged.status == 301 and forged.headers["Location"] == f"https://{HOST}/accounts/login/"
    conn.request("GET", "/healthz", headers={"Host": HOST})
    health = conn.getresponse()
    assert health.status == 200, health.read()
    conn.close()


def test_api_errors_keep_their_shape_through_the_proxy(proxied: Proxied):
    r = proxied.api("GET", "/api/v1/no-such-thing")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    r = proxied.api("DELETE", "/api/v1/messages")
    assert r.status == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_websockets_and_requests_are_balanced_over_both_processes_without_stickiness(proxied: Proxied):
    key = proxied.stack.env["PARLEY_INTEGRATION_KEY"]
    customer = proxied.api("POST", "/api/v1/customers", {"name": "Proxy Paula", "external_id": str(uuid.uuid4())},
                           token=key)
    assert customer.status == 201, customer.body
    token, customer_id = customer.json()["token"], customer.json()["customer_id"]
    login = proxied.api("POST", "/api/v1/auth/agent",
                        {"username": proxied.stack.agent_username, "password": proxied.stack.agent_password})
    assert login.status == 201, login.body
    agent = login.json()["token"]
    count = 12

    async def scenario() -> dict[int, list[str]]:
        url = f"wss://{HOST}:{proxied.https_port}/ws/v1/?token={token}"
        sockets = [await websockets.connect(url, ssl=proxied.tls) for _ in range(4)]
        try:
            sent: list[str] = []
            for i in range(count):
                mid = str(uuid.uuid4())
                r = await asyncio.to_thread(
                    proxied.api, "POST", f"/api/v1/conversations/{customer_id}/messages",
                    {"message_id": mid, "body": f"reply {i}"}, agent,
                )
                assert r.status == 201, r.body
                sent.append(mid)
            received: dict[int, list[str]] = {}
            for n, ws in enumerate(sockets):
                got: list[str] = []
                while len(got) < count:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if frame["type"] == "message.sent":
                        got.append(frame["message"]["message_id"])
                received[n] = got
            # Nothing more for anyone: each message once per socket.
            for ws in sockets:
                await ws.send(json.dumps({"type": "ping"}))
                while (frame := json.loads(await asyncio.wait_for(ws.recv(), 20)))["type"] != "pong":
                    assert frame["type"] != "message.sent", frame
            assert all(got == sent for got in received.values()), (sent, received)
            return received
        finally:
            for ws in sockets:
                await ws.close()

    asyncio.run(scenario())
    # nginx spread the sockets and the requests over both Daphne processes.
    answered_by = set(re.findall(r"upstream=(127\.[\d.]+:\d+)", proxied.access_log.read_text()))
    ports = {u.rsplit(":", 1)[1] for u in proxied.stack.urls}
    assert {a.rsplit(":", 1)[1] for a in answered_by} >= ports, answered_by


def test_nginx_logs_no_token_of_a_chat_link_a_socket_or_an_email_link(proxied: Proxied):
    from django.test import override_settings

    from notifications.unsubscribe import issue_unsubscribe_token

    key = proxied.stack.env["PARLEY_INTEGRATION_KEY"]
    r = proxied.api("POST", "/api/v1/customers", {"name": "Logged Lou", "external_id": str(uuid.uuid4())}, token=key)
    assert r.status == 201, r.body
    token, customer_id = r.json()["token"], r.json()["customer_id"]
    with override_settings(SECRET_KEY=proxied.stack.env["DJANGO_SECRET_KEY"]):  # signed as the stack signs
        unsubscribe = issue_unsubscribe_token(uuid.UUID(customer_id), "lou@example.com")

    assert proxied.request("GET", f"/chat/?token={token}&from=email").status == 302
    assert proxied.request("GET", f"/email/unsubscribe/{unsubscribe}/").status == 200  # a real link's page

    async def socket() -> None:
        async with websockets.connect(f"wss://{HOST}:{proxied.https_port}/ws/v1/?token={token}", ssl=proxied.tls) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] != "pong":
                pass

    asyncio.run(socket())
    # nginx writes a socket's line when it has closed: wait for it, then read everything.
    deadline = time.monotonic() + 30
    while '"GET /ws/v1/ HTTP/1.1" 101' not in (log := proxied.access_log.read_text()):
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.1)
    assert '"GET /chat/ HTTP/1.1" 302' in log and '"GET /email/unsubscribe/[token] HTTP/1.1" 200' in log, log[-2000:]
    default_log = proxied.access_log.with_name("access.log")  # nginx's own, in its default format
    for secret in (token, token.split(".")[-1], token.split(":")[-1], unsubscribe, unsubscribe.split(":")[-1]):
        assert secret not in log
        assert not default_log.exists() or secret not in default_log.read_text()


def sign_up(proxied: Proxied, source: str, forwarded_for: str | None = None) -> int:
    """The visitor form, as a browser posts it (CSRF cookie and token); the status of the post."""
    extra = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    form = proxied.request("GET", "/chat/start/", headers=extra, source=source)
    assert form.status == 200, form.status
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body.decode()).group(1)
    cookie = next(c.split(";")[0] for c in form.header_all("Set-Cookie") if c.startswith("csrftoken="))
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": csrf, "name": "Vera Visitor",
                                   "email": f"{uuid.uuid4().hex[:8]}@example.com"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "Origin": proxied.origin,
               "Referer": f"{proxied.origin}/chat/start/", **extra}
    return proxied.request("POST", "/chat/start/", body, headers, source=source).status


def test_rate_limits_count_the_clients_own_address_which_it_cannot_choose(proxied: Proxied):
    first, second = "127.0.0.3", "127.0.0.4"
    for _ in range(SIGNUPS_PER_HOUR):
        assert sign_up(proxied, first) == 302
    assert sign_up(proxied, first) == 429
    # Claiming to be someone else in X-Forwarded-For does not help: nginx
    # appends the real address, and Parley reads from the right.
    assert sign_up(proxied, first, forwarded_for=second) == 429
    assert sign_up(proxied, first, forwarded_for="203.0.113.7") == 429
    # Another client behind the same proxy has its own budget (not the proxy's).
    assert sign_up(proxied, second) == 302
