"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from project.daphne import close_bad_frames_cleanly  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

close_bad_frames_cleanly()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session cookie for agents, the customer cookie or ?token= for customers.
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
