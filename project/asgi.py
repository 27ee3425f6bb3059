"""ASGI entry point: HTTP through Django, websockets through Channels.

In front of both, the reverse proxy's word about the client: only a
connection from an address in PARLEY_TRUSTED_PROXIES has its
X-Forwarded-For taken as the client's address (what rate limits count) and
its X-Forwarded-Proto as the scheme (what secure cookies, the https redirect
and HSTS go by). uvicorn's ProxyHeadersMiddleware does exactly that, walking
X-Forwarded-For from the right past the trusted hops, for http and
websockets alike; anyone else's headers are left unread.

Behind it, uploads too large for the attachment cap are turned away before
Django reads their body (api.uploadcap).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware  # noqa: E402

from api.uploadcap import UploadSizeCap  # noqa: E402
from project.daphne import (  # noqa: E402
    bound_send_buffers,
    close_bad_frames_cleanly,
    leave_bodies_to_django,
    name_every_status,
    redact_access_log,
)
from project.gcfreeze import freeze_startup_objects  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

close_bad_frames_cleanly()
leave_bodies_to_django()
name_every_status()
redact_access_log()
bound_send_buffers(settings.PARLEY_SOCKET_SEND_BUFFER_BYTES)

router = ProtocolTypeRouter(
    {
        # Oversized uploads are refused before Django reads (and spools) their body.
        "http": UploadSizeCap(django_asgi_app),
        # Session cookie for agents, the customer cookie or ?token= for customers.
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
application = (
    ProxyHeadersMiddleware(router, trusted_hosts=settings.PARLEY_TRUSTED_PROXIES)  # type: ignore[arg-type]
    if settings.PARLEY_TRUSTED_PROXIES
    else router
)

# What the process loaded to get here lives as long as it does: out of the
# collector's full passes, which otherwise pause every socket (project/gcfreeze.py).
freeze_startup_objects()
