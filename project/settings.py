"""Parley settings: everything comes from the environment.

The defaults give the embedded mode (SQLite in WAL mode, in-memory channel
layer, one process); production sets DATABASE_URL, REDIS_URL and the secrets.
See docs/operations.md for every variable.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# Off unless asked for: `make run` writes PARLEY_DEBUG=1 into its .env. A
# deployment that forgets the variable gets production behaviour (no debug
# pages, secure cookies, HSTS), never Django's debug pages with the settings.
DEBUG = env_bool("PARLEY_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # Refuse to start: a key made up per process would sign tokens and
        # sessions that the next process (or the next restart) refuses.
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when PARLEY_DEBUG is off (docs/deploy.md: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    # Development only (`make run` writes a key into .env): a random key for
    # this process, never a published one, so nothing signed can be forged.
    # Tokens and sessions then last only as long as the process.
    import secrets as _secrets
    import warnings as _warnings

    SECRET_KEY = _secrets.token_urlsafe(50)
    _warnings.warn("DJANGO_SECRET_KEY is not set: using a random key for this process only", stacklevel=1)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "servestatic",  # its configuration checks (the middleware serves the files)
    "channels",
    "eventstore",
    "workers",
    "accounts",
    "customers",
    "chat",
    "attachments",
    "conversations",
    "readmodels",
    "notifications",
    "outbound",
    "realtime",
    "inbound",
    "web",
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files before anything else touches the request (ServeStatic:
    # compressed variants, immutable caching of hashed names; see below).
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Closest to the views: a database outage is 503 unavailable, not a 500 page.
    "api.unavailable.DatabaseOutageMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------

DEFAULT_SQLITE = f"sqlite:///{BASE_DIR / 'parley.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or DEFAULT_SQLITE,
        # No persistent connections: under ASGI every request runs on a
        # thread of its own, so they pile up instead of being reused
        # (measured: "too many clients" at 160 requests). On PostgreSQL a
        # pool per process saves the connects instead (below).
        conn_max_age=0,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # One writer at a time: BEGIN IMMEDIATE takes the write lock up front,
        # so concurrent writers queue on the busy timeout instead of failing
        # with "database is locked" when a read transaction tries to upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that threads in tests share one database; one
    # per test process, so that runs side by side do not clobber each other;
    # in the temporary folder, so that no run leaves a file (its WAL and
    # shared-memory files beside it) in the checkout.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"parley-test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"{DATABASES['default']['NAME']}_parley_{os.getpid()}"}
    # One pool per process (psycopg_pool through Django): a request or a
    # websocket command borrows a connection and gives it back, instead of
    # connecting (several milliseconds, a PostgreSQL process fork) each time.
    # Long-lived worker threads hold theirs. Connections per process stay
    # within PARLEY_DB_POOL_SIZE; see docs/operations.md for the sum.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    # A database that does not answer is an outage, told at once: a connect
    # gives up after PARLEY_DB_CONNECT_TIMEOUT seconds, and a request waits
    # as long at most for a pooled connection, then answers 503 unavailable
    # (api.unavailable) instead of hanging.
    options.setdefault("connect_timeout", int(os.environ.get("PARLEY_DB_CONNECT_TIMEOUT", "2")))
    # Server-side prepared statements: Django turns them off (prepare_threshold None), and
    # then psycopg ignores every ``prepare=True``, so the log's appends and reads and the
    # units' statements (eventstore) were parsed and planned on every execution (an append
    # with its erasure check: about 0.1 ms of planning, a fifth of a send). Django's own
    # cursors bind on the client and are never prepared; only Parley's server-binding
    # statements are (at once where they ask, else after five runs of one text).
    # PARLEY_DB_PREPARE_THRESHOLD=off: never (a connection pooler that cannot keep them).
    prepare = os.environ.get("PARLEY_DB_PREPARE_THRESHOLD", "5").strip().lower()
    options.setdefault("prepare_threshold", None if prepare == "off" else int(prepare))
    # How the server plans a prepared statement (PARLEY_DB_PLAN_CACHE_MODE, docs/operations.md).
    server: list[str] = []
    plan_mode = os.environ.get("PARLEY_DB_PLAN_CACHE_MODE", "auto").strip().lower()
    if plan_mode not in ("auto", "force_custom_plan", "force_generic_plan"):
        raise ImproperlyConfigured(
            f"PARLEY_DB_PLAN_CACHE_MODE={plan_mode!r}: auto, force_custom_plan or force_generic_plan")
    if plan_mode != "auto":
        server.append(f"-c plan_cache_mode={plan_mode}")
    # Off by default (0): a statement that runs longer than this many milliseconds is cancelled.
    if int(os.environ.get("PARLEY_DB_STATEMENT_TIMEOUT_MS", "0")) > 0:
        server.append(f"-c statement_timeout={int(os.environ['PARLEY_DB_STATEMENT_TIMEOUT_MS'])}")
    if server:
        options["options"] = " ".join(server)
    options["pool"] = {
        "min_size": 1,
        # Two more per partition a runworkers may hold (the pipeline's, and one its followers share).
        "max_size": int(os.environ.get("PARLEY_DB_POOL_SIZE", str(16 + 2 * int(os.environ.get("PARLEY_PIPELINE_PARTITIONS", "1"))))),
        "timeout": float(os.environ.get("PARLEY_DB_POOL_TIMEOUT", os.environ.get("PARLEY_DB_CONNECT_TIMEOUT", "2"))),
        # (CONN_HEALTH_CHECKS above makes the pool check each connection it hands out, so
        # one the server closed, a restart, is replaced rather than used.)
        # While the database is down the pool retries its connects with a doubling delay;
        # left at psycopg_pool's default (300 s) that delay grows to minutes, and requests keep
        # failing that long after the database is back. Giving an attempt up after a few
        # seconds lets the next request start a fresh one at once.
        "reconnect_timeout": float(os.environ.get("PARLEY_DB_RECONNECT_TIMEOUT", "5")),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ---------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
# The channel layer may shard over several Redis servers (space-separated
# URLs; each channel and group lives on one of them, by a hash of its name);
# by default it uses REDIS_URL alone. Rate limits and wake-ups stay on REDIS_URL.
PARLEY_CHANNEL_REDIS_URLS = os.environ.get("PARLEY_CHANNEL_REDIS_URLS", "").split() or ([REDIS_URL] if REDIS_URL else [])
# Names this deployment's channels, groups and wake-ups in a Redis others may share.
PARLEY_CHANNEL_PREFIX = os.environ.get("PARLEY_CHANNEL_PREFIX", "parley")
# "pubsub" (RedisPubSubChannelLayer) or "core" (RedisChannelLayer); see
# docs/benchmarks.md for why pubsub is the default.
PARLEY_CHANNEL_LAYER = os.environ.get("PARLEY_CHANNEL_LAYER", "pubsub")
# A socket's channel holds this many messages while the socket is busy (a
# resume replaying the log); the pub/sub layer has no such limit.
CHANNEL_CAPACITY = 1000
if REDIS_URL and PARLEY_CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Pub/Sub channels ignore the Redis database number: a prefix of
            # its own keeps deployments sharing a Redis out of each other's groups.
            "CONFIG": {"hosts": PARLEY_CHANNEL_REDIS_URLS, "prefix": PARLEY_CHANNEL_PREFIX},
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout, as long as the
                # layer's blocking receive, and caps its pool at 100: both
                # closed sockets with 1011 under load (channels_redis#422).
                "hosts": [{"address": url, "socket_timeout": None, "max_connections": 2000}
                          for url in PARLEY_CHANNEL_REDIS_URLS],
                "prefix": PARLEY_CHANNEL_PREFIX,
                "capacity": CHANNEL_CAPACITY,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": CHANNEL_CAPACITY}}
    }

# Rate limits count in the cache: shared through Redis when there is one,
# per process otherwise (fine for the single-process embedded mode).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("PARLEY_CACHE_KEY_PREFIX", "parley"),
            # Fail fast when Redis is away: rate limits then count locally (accounts/ratelimit.py).
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

# --- Auth, sessions, security ------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/agent/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Served over https (through the reverse proxy, which says so in
# X-Forwarded-Proto; see PARLEY_TRUSTED_PROXIES): secure cookies, a redirect
# of plain http, and HSTS. On by default whenever PARLEY_DEBUG is off;
# PARLEY_HTTPS=0 only for a deployment that really is plain http (a test rig).
PARLEY_HTTPS = env_bool("PARLEY_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PARLEY_HTTPS
if PARLEY_HTTPS:
    SECURE_SSL_REDIRECT = True
    # Health checks and scrapes come from inside, over plain http.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = int(os.environ.get("PARLEY_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PARLEY_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("PARLEY_HSTS_PRELOAD", True)

# Addresses (or CIDR networks) of the reverse proxies in front of Daphne.
# Only a connection from one of them has its X-Forwarded-For (the client's
# address, for rate limits) and X-Forwarded-Proto (https, for the settings
# above) believed; anyone else's are ignored (project.asgi).
PARLEY_TRUSTED_PROXIES = env_list("PARLEY_TRUSTED_PROXIES", [])

# Request bodies are small JSON documents; anything bigger is refused before
# it is parsed (api.errors answers 413 body_too_large for Django's
# RequestDataTooBig). In a multipart upload this limits the fields beside
# the file; the file itself is capped by PARLEY_MAX_ATTACHMENT_BYTES below.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- Internationalisation, static ---------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
# `manage.py collectstatic` writes here; ServeStatic serves it (every web
# process, no separate file server needed; the proxy may cache it).
STATIC_ROOT = Path(os.environ.get("PARLEY_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Attachments (docs/operations.md): on the local disk under
# PARLEY_MEDIA_ROOT by default, or in an S3 bucket (PARLEY_ATTACHMENT_STORAGE=s3,
# with django-storages installed: `pip install 'parley[s3]'`). Never under
# STATIC_ROOT and never served by the static-file middleware: every download
# goes through the API's authorisation (api.attachments).
PARLEY_MEDIA_ROOT = Path(os.environ.get("PARLEY_MEDIA_ROOT", str(BASE_DIR / "media")))
PARLEY_ATTACHMENT_STORAGE = os.environ.get("PARLEY_ATTACHMENT_STORAGE", "filesystem").strip().lower()
if PARLEY_ATTACHMENT_STORAGE == "s3":
    _attachment_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("PARLEY_S3_BUCKET", ""),
            # An S3-compatible service (MinIO, Ceph, R2...); unset: AWS itself.
            "endpoint_url": os.environ.get("PARLEY_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("PARLEY_S3_REGION") or None,
            "location": os.environ.get("PARLEY_S3_PREFIX", "parley"),
            # Objects are private; Parley streams them to authorised callers itself.
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
            # Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an
            # instance role), read by boto3 from the environment.
        },
    }
elif PARLEY_ATTACHMENT_STORAGE == "filesystem":
    _attachment_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # No base_url: the files have no public address.
        "OPTIONS": {"location": str(PARLEY_MEDIA_ROOT), "base_url": None, "file_permissions_mode": 0o640,
                    "directory_permissions_mode": 0o750},
    }
else:
    raise ImproperlyConfigured(f"PARLEY_ATTACHMENT_STORAGE must be filesystem or s3, not {PARLEY_ATTACHMENT_STORAGE!r}")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "attachments": _attachment_storage,
    # Production: content-hashed names (so a year-long immutable cache is
    # safe), gzip and Brotli variants, and the pages' ES module imports
    # rewritten to the hashed names (project.staticfiles). Development serves
    # the sources as they are, from the apps' static/ folders.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG else "project.staticfiles.HashedModulesStorage"
    },
}
# Hashed names are cached for a year (ServeStatic's "immutable"); anything
# else (the unhashed copies, icons named by the service worker) for a minute.
SERVESTATIC_MAX_AGE = 0 if DEBUG else 60
# Development reads the apps' folders on each request; production only STATIC_ROOT.
SERVESTATIC_USE_FINDERS = DEBUG
SERVESTATIC_AUTOREFRESH = DEBUG

# --- Parley ------------------------------------------------------------------

# Attachments: the largest file accepted (bytes; larger: 413 attachment_too_large).
PARLEY_MAX_ATTACHMENT_BYTES = int(os.environ.get("PARLEY_MAX_ATTACHMENT_BYTES", str(10 * 1024 * 1024)))
# Multipart files pass the size cap first: it counts bytes as they are parsed
# and stops an oversized upload there, before it is held in memory or on disk
# in full. Up to FILE_UPLOAD_MAX_MEMORY_SIZE a file stays in memory, beyond it
# in a temporary file.
FILE_UPLOAD_HANDLERS = [
    "attachments.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

PARLEY_INTEGRATION_KEY = os.environ.get("PARLEY_INTEGRATION_KEY", "")

# The master keys that wrap each customer's data key (eventstore.keys,
# docs/privacy.md): "id:key,..." with 32-byte base64url keys; the first wraps
# new keys. Losing them loses every message in the log: back them up apart
# from the database.
PARLEY_KEYS = os.environ.get("PARLEY_KEYS", "").strip()
if not PARLEY_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "PARLEY_KEYS must be set when PARLEY_DEBUG is off (docs/privacy.md: "
            "python3 -c 'import base64, os; print(\"k1:\" + base64.urlsafe_b64encode(os.urandom(32)).decode())')"
        )
    # Development only (`make run` writes PARLEY_KEYS into .env): a master key
    # derived from this process's secret key, so the log reads back for as
    # long as the secret key stays the same.
    import base64 as _base64
    import hashlib as _hashlib

    PARLEY_KEYS = "dev:" + _base64.urlsafe_b64encode(
        _hashlib.sha256(b"parley master key\x00" + SECRET_KEY.encode()).digest()
    ).decode().rstrip("=")
# Conversations with no activity for this many days are erased (docs/privacy.md); 0: kept for ever.
PARLEY_RETENTION_DAYS = float(os.environ.get("PARLEY_RETENTION_DAYS", "0") or 0)
# Key that signs customer tokens (default SECRET_KEY); rotating it revokes them all.
CUSTOMER_TOKEN_KEY = os.environ.get("CUSTOMER_TOKEN_KEY", "")
CUSTOMER_TOKEN_MAX_AGE = int(os.environ.get("CUSTOMER_TOKEN_MAX_AGE", str(30 * 24 * 3600)))

VAPID_PRIVATE_KEY = os.environ.get("VAPID_PRIVATE_KEY", "")
VAPID_PUBLIC_KEY = os.environ.get("VAPID_PUBLIC_KEY", "")
VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:support@example.com")
PUSH_ENDPOINT_ALLOWED_HOSTS = env_list(
    "PUSH_ENDPOINT_ALLOWED_HOSTS",
    [
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "web.push.apple.com",
        "*.notify.windows.com",
    ],
)
PUSH_ENDPOINT_INSECURE_HOSTS = env_list("PUSH_ENDPOINT_INSECURE_HOSTS", [])
# The customer page's "start a conversation" form for visitors.
PARLEY_VISITOR_SIGNUP = env_bool("PARLEY_VISITOR_SIGNUP", True)
PARLEY_VISITOR_SIGNUPS_PER_HOUR = int(os.environ.get("PARLEY_VISITOR_SIGNUPS_PER_HOUR", "10"))
PUSH_DELAY_SECONDS = float(os.environ.get("PUSH_DELAY_SECONDS", "0"))

# -- the website widget (docs/widget.md)


def widget_origins(raw: str) -> list[str]:
    """The origins of ``PARLEY_WIDGET_ORIGINS`` (space-separated), in the one
    spelling browsers give ``event.origin`` and CSP matches: lower-case scheme
    and host, no default port, no path. Anything else is a configuration
    error: an origin that silently never matches would leave the widget
    blank, and a pattern (``*``) would let any site frame the chat."""
    from urllib.parse import urlsplit

    origins: list[str] = []
    for item in raw.replace(",", " ").split():
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError:
            parts, port = None, None
        host = (parts.hostname or "") if parts else ""
        if (
            parts is None
            or parts.scheme.lower() not in ("http", "https")
            or not re.fullmatch(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]", host if ":" not in host else f"[{host}]")
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ImproperlyConfigured(
                f"PARLEY_WIDGET_ORIGINS: {item!r} is not an origin like https://shop.example.com "
                "(scheme, host and port only, no wildcard, no path)"
            )
        scheme = parts.scheme.lower()
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != {"http": 80, "https": 443}[scheme]:
            netloc = f"{netloc}:{port}"
        origin = f"{scheme}://{netloc}"
        if origin not in origins:
            origins.append(origin)
    return origins


#: Host sites that may embed the chat (the iframe page's frame-ancestors, and
#: the only origins the widget's postMessage bridge answers). None: no site can.
PARLEY_WIDGET_ORIGINS = widget_origins(os.environ.get("PARLEY_WIDGET_ORIGINS", ""))
#: What the launcher and the widget's header show (GET /api/v1/widget).
PARLEY_WIDGET_NAME = os.environ.get("PARLEY_WIDGET_NAME", "Support").strip() or "Support"
PARLEY_WIDGET_GREETING = os.environ.get("PARLEY_WIDGET_GREETING", "Hi! How can we help?").strip()
PARLEY_WIDGET_COLOR = os.environ.get("PARLEY_WIDGET_COLOR", "#0f766e").strip().lower()
if not re.fullmatch(r"#[0-9a-f]{6}", PARLEY_WIDGET_COLOR):
    raise ImproperlyConfigured(f"PARLEY_WIDGET_COLOR must be a colour like #0f766e, not {PARLEY_WIDGET_COLOR!r}")
#: A sentence on how soon the team answers; empty: none is shown.
PARLEY_WIDGET_REPLY_TIME = os.environ.get("PARLEY_WIDGET_REPLY_TIME", "We usually reply within a few minutes.").strip()
# Messages one customer / one agent may send per minute, HTTP and websocket
# together (accounts.sendbudget); past it: 429 rate_limited with a retry hint.
PARLEY_CUSTOMER_SENDS_PER_MINUTE = int(os.environ.get("PARLEY_CUSTOMER_SENDS_PER_MINUTE", "30"))
PARLEY_AGENT_SENDS_PER_MINUTE = int(os.environ.get("PARLEY_AGENT_SENDS_PER_MINUTE", "120"))
# Edits per minute, HTTP and websocket together (accounts.sendbudget.charge_edit).
PARLEY_CUSTOMER_EDITS_PER_MINUTE = int(os.environ.get("PARLEY_CUSTOMER_EDITS_PER_MINUTE", "30"))
PARLEY_AGENT_EDITS_PER_MINUTE = int(os.environ.get("PARLEY_AGENT_EDITS_PER_MINUTE", "120"))
# Searches per minute (accounts.sendbudget.charge_search).
PARLEY_CUSTOMER_SEARCHES_PER_MINUTE = int(os.environ.get("PARLEY_CUSTOMER_SEARCHES_PER_MINUTE", "30"))
PARLEY_AGENT_SEARCHES_PER_MINUTE = int(os.environ.get("PARLEY_AGENT_SEARCHES_PER_MINUTE", "120"))
# Uploads per minute (accounts/sendbudget.charge_upload): files are stored before they are sent.
PARLEY_CUSTOMER_UPLOADS_PER_MINUTE = int(os.environ.get("PARLEY_CUSTOMER_UPLOADS_PER_MINUTE", "20"))
PARLEY_AGENT_UPLOADS_PER_MINUTE = int(os.environ.get("PARLEY_AGENT_UPLOADS_PER_MINUTE", "60"))

# "source=secret,source=secret2": a source may appear twice during rotation.
INBOUND_WEBHOOK_SECRETS: dict[str, list[str]] = {}
for _pair in env_list("INBOUND_WEBHOOK_SECRETS", []):
    _source, _, _secret = _pair.partition("=")
    if _source and _secret:
        INBOUND_WEBHOOK_SECRETS.setdefault(_source.strip(), []).append(_secret.strip())

# Push delivery (see docs/push.md).
PUSH_TTL_SECONDS = int(os.environ.get("PUSH_TTL_SECONDS", str(24 * 3600)))
PUSH_TIMEOUT_SECONDS = float(os.environ.get("PUSH_TIMEOUT_SECONDS", "10"))
PUSH_LEASE_SECONDS = float(os.environ.get("PUSH_LEASE_SECONDS", "60"))
PUSH_MAX_FAILURES = int(os.environ.get("PUSH_MAX_FAILURES", "8"))
PUSH_BACKOFF_BASE_SECONDS = float(os.environ.get("PUSH_BACKOFF_BASE_SECONDS", "2"))
# Threads that push at once per process (they hold no database connection).
PUSH_DELIVERY_WORKERS = int(os.environ.get("PUSH_DELIVERY_WORKERS", "4"))
# Devices a thread claims per round; rounds are marked sent together, so a
# process that dies repeats at most the pushes of its rounds in flight.
PUSH_CLAIM_BATCH = int(os.environ.get("PUSH_CLAIM_BATCH", "16"))

# Outbound webhooks (see docs/webhooks-outbound.md).
# "host:port" pairs a webhook URL may name over plain http, even when they
# resolve to a loopback or private address (local receivers in tests).
WEBHOOK_INSECURE_HOSTS = env_list("WEBHOOK_INSECURE_HOSTS", [])
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
# How long a delivery is retried (from when it was queued) before it is marked failed.
WEBHOOK_RETRY_FOR_SECONDS = float(os.environ.get("WEBHOOK_RETRY_FOR_SECONDS", str(24 * 3600)))
WEBHOOK_BACKOFF_BASE_SECONDS = float(os.environ.get("WEBHOOK_BACKOFF_BASE_SECONDS", "5"))
WEBHOOK_BACKOFF_CAP_SECONDS = float(os.environ.get("WEBHOOK_BACKOFF_CAP_SECONDS", "3600"))
WEBHOOK_LEASE_SECONDS = float(os.environ.get("WEBHOOK_LEASE_SECONDS", "60"))
# Threads that post at once per process (they hold no database connection),
# and how many of them one endpoint may use: a receiver that hangs holds at
# most that many (and, with two threads or more, never all of them); the
# others keep serving the rest.
WEBHOOK_DELIVERY_WORKERS = int(os.environ.get("WEBHOOK_DELIVERY_WORKERS", "8"))
WEBHOOK_ENDPOINT_CONCURRENCY = int(os.environ.get("WEBHOOK_ENDPOINT_CONCURRENCY", "4"))
# Rows (lanes) of one endpoint a thread claims per round.
WEBHOOK_CLAIM_BATCH = int(os.environ.get("WEBHOOK_CLAIM_BATCH", "16"))
# Finished deliveries (the operators' history) are deleted after this many days.
WEBHOOK_RETENTION_DAYS = float(os.environ.get("WEBHOOK_RETENTION_DAYS", "30"))
# How long the previous secret still signs after a rotation.
WEBHOOK_SECRET_OVERLAP_SECONDS = float(os.environ.get("WEBHOOK_SECRET_OVERLAP_SECONDS", str(24 * 3600)))

# Rows a consumer group adds to a table before this process runs ANALYZE on it, the
# threshold doubling with the table (eventstore.statistics; 0: leave it to autovacuum).
PARLEY_DB_ANALYZE_ROWS = int(os.environ.get("PARLEY_DB_ANALYZE_ROWS", "1000"))

# How long a worker waits for a wake-up before it looks anyway. Wake-ups
# (after every commit, and across processes) bring new work at once; the
# poll only covers a lost wake-up, so it is long and idle workers cost little.
PARLEY_POLL_INTERVAL = float(os.environ.get("PARLEY_POLL_INTERVAL", "5.0"))
# Partitions of every consumer group, by customer (eventstore.partitions):
# each runworkers process takes a fair share; every process of a deployment
# (web processes too) must say the same number.
PARLEY_PIPELINE_PARTITIONS = int(os.environ.get("PARLEY_PIPELINE_PARTITIONS", "1"))
if not 1 <= PARLEY_PIPELINE_PARTITIONS <= 64:
    raise ImproperlyConfigured("PARLEY_PIPELINE_PARTITIONS must be a whole number from 1 to 64")
# The groups that follow the read models (push, webhooks, email fallback)
# and the workflow take a batch at most this often: under load one
# transaction handles many events (workers.worker).
PARLEY_FOLLOWER_INTERVAL = float(os.environ.get("PARLEY_FOLLOWER_INTERVAL", "0.05"))
# How long the read models' rows as of each event are kept once every group
# that reads them is past them (readmodels.asof): web processes filling a
# gap in live frames read them for that long.
PARLEY_EVENT_ROWS_KEEP_SECONDS = float(os.environ.get("PARLEY_EVENT_ROWS_KEEP_SECONDS", "600"))
PUSH_POLL_INTERVAL = float(os.environ.get("PUSH_POLL_INTERVAL", str(PARLEY_POLL_INTERVAL)))
WEBHOOK_POLL_INTERVAL = float(os.environ.get("WEBHOOK_POLL_INTERVAL", str(PARLEY_POLL_INTERVAL)))
# NOTIFY other processes after appends (off only in the test process, whose
# databases are dropped at the end and must not keep a notifier connection).
PARLEY_CROSS_PROCESS_WAKEUP = env_bool("PARLEY_CROSS_PROCESS_WAKEUP", True)
PARLEY_LEASE_SECONDS = float(os.environ.get("PARLEY_LEASE_SECONDS", "10"))
# Threads (each with its database connection) that serve a web process's
# websockets: commands, resumes, and the dispatcher's reads of the log.
# Bytes a websocket may have queued that its client has not read; past it the socket is closed
# with 4000 (reconnect and resume), so a client that never reads cannot grow the process (project.daphne).
PARLEY_SOCKET_SEND_BUFFER_BYTES = int(os.environ.get("PARLEY_SOCKET_SEND_BUFFER_BYTES", str(4 * 1024 * 1024)))
# Open websockets one identity (a customer, an agent) may hold in one web process; the next is
# refused with close 4429 (too_many_sockets).
PARLEY_SOCKETS_PER_IDENTITY = int(os.environ.get("PARLEY_SOCKETS_PER_IDENTITY", "20"))
PARLEY_REALTIME_DB_THREADS = int(os.environ.get("PARLEY_REALTIME_DB_THREADS", "6"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own default gives "django" a handler of its own (in debug mode), so
        # each 4xx would be written twice: once there, once by the root's. Only the root's.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        # Its receive task logs a traceback a second while Redis is down; the
        # dispatcher and the fan-out log the outage once, and its end.
        "channels_redis.pubsub": {"level": "CRITICAL"},
    },
}

# --- Observability --------------------------------------------------------------
# Metrics and the log format (docs/metrics.md).

# The bearer key of the web processes' /metrics; unset, /metrics answers 404.
PARLEY_METRICS_KEY = os.environ.get("PARLEY_METRICS_KEY", "")
# host:port on which `runworkers` (no HTTP server of its own) serves its
# metrics, e.g. 127.0.0.1:9464; unset, it serves none.
PARLEY_METRICS_BIND = os.environ.get("PARLEY_METRICS_BIND", "")
# "plain": one line per record, for a person; "json": one JSON object per
# line with the records' structured fields (event_id, position, consumer...),
# for a log collector.
PARLEY_LOG_FORMAT = os.environ.get("PARLEY_LOG_FORMAT", "plain").strip().lower()
if PARLEY_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"PARLEY_LOG_FORMAT must be plain or json, not {PARLEY_LOG_FORMAT!r}")
_logging: dict = LOGGING  # (its values are of several types: this one name indexes them)
_logging["formatters"]["json"] = {"()": "observability.logs.JsonFormatter"}
_logging["handlers"]["console"]["formatter"] = PARLEY_LOG_FORMAT

# -- team workflow (docs/workflow.md)
#: "round_robin": new and reopened unassigned conversations go to online agents in turn.
PARLEY_AUTO_ASSIGN = os.environ.get("PARLEY_AUTO_ASSIGN", "").strip().lower()
#: An agent's reply to an unassigned conversation assigns it to them (as a claim would).
PARLEY_ASSIGN_ON_REPLY = env_bool("PARLEY_ASSIGN_ON_REPLY", True)
#: Unresolved conversations auto-assignment gives one agent at most.
PARLEY_AGENT_CAPACITY = int(os.environ.get("PARLEY_AGENT_CAPACITY", "10"))
#: Seconds a customer may wait for an agent's first reply (0: no target), counted in business hours.
PARLEY_FIRST_RESPONSE_SECONDS = float(os.environ.get("PARLEY_FIRST_RESPONSE_SECONDS", "0") or 0)

# -- business hours (docs/hours.md)
#: When the team is open, in PARLEY_TIME_ZONE: "Mon-Fri 09:00-17:00; Sat 10:00-14:00" (empty: always open).
PARLEY_BUSINESS_HOURS = os.environ.get("PARLEY_BUSINESS_HOURS", "").strip()
#: The time zone the hours and holidays are written in (an IANA name: "Europe/Berlin").
PARLEY_TIME_ZONE = os.environ.get("PARLEY_TIME_ZONE", "UTC").strip() or "UTC"
#: Whole days closed, in that time zone: "2026-12-25, 2027-01-01".
PARLEY_HOLIDAYS = os.environ.get("PARLEY_HOLIDAYS", "").strip()
#: The automatic reply to a customer's first message of a waiting period outside business hours;
#: "{next_opening}" is replaced by when the team opens next, in the team's time zone.
PARLEY_AWAY_MESSAGE = os.environ.get(
    "PARLEY_AWAY_MESSAGE", "Thanks for your message! We're away right now, and we reply by {next_opening}.",
).strip()


def _check_business_hours() -> None:
    from conversations.hours import BusinessHours, InvalidBusinessHours

    try:
        BusinessHours.parse(PARLEY_BUSINESS_HOURS, PARLEY_TIME_ZONE, PARLEY_HOLIDAYS)
    except InvalidBusinessHours as err:
        raise ImproperlyConfigured(f"business hours: {err}") from None


_check_business_hours()

# -- search (docs/search.md)
#: The PostgreSQL text search configuration messages and customers are indexed
#: and searched with: "simple" (default: no stemming, no stop words, any
#: language) or a language's ("english", "german", ...). Changing it means
#: `rebuild_readmodels --only search`. SQLite (FTS5) ignores it.
PARLEY_SEARCH_CONFIG = os.environ.get("PARLEY_SEARCH_CONFIG", "simple").strip() or "simple"
if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", PARLEY_SEARCH_CONFIG):
    raise ImproperlyConfigured(
        f"PARLEY_SEARCH_CONFIG must name a text search configuration (like simple or english), not {PARLEY_SEARCH_CONFIG!r}"
    )

# -- email fallback (docs/email.md)
#: Seconds an agent message may stay unread before the customer is emailed (0: never).
PARLEY_EMAIL_FALLBACK_SECONDS = float(os.environ.get("PARLEY_EMAIL_FALLBACK_SECONDS", "600") or 0)
#: Seconds the chat link in such an email opens the chat for.
PARLEY_EMAIL_LINK_MAX_AGE = int(os.environ.get("PARLEY_EMAIL_LINK_MAX_AGE", str(7 * 24 * 3600)))
#: Where customers reach this deployment: the emails' links start with it.
PARLEY_PUBLIC_URL = os.environ.get("PARLEY_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Development (`make run`) prints emails on the console; production sends
# them over SMTP with the settings below, unless EMAIL_BACKEND says otherwise.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Parley support <support@localhost>")
