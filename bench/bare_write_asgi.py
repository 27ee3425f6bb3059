"""The baseline of bench/writepath.py: a bare Daphne + Django view that authenticates and INSERTs.

Served by Daphne exactly like Parley (``python -m daphne -b 127.0.0.1 -p P
bench.bare_write_asgi:application``), with Django configured here and
nothing else: no middleware, no apps. ``POST /send`` checks a bearer token
signed with Django's signer (what a customer token costs to verify), parses
the JSON body, and INSERTs one row into a table of its own in the same
PostgreSQL database (one autocommit statement), answering 201 with JSON. What
Parley's send costs beyond this is the price of its own work per message.
"""

from __future__ import annotations

import json
import os
import uuid

from django.conf import settings

if not settings.configured:
    import dj_database_url

    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ["DJANGO_SECRET_KEY"],
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"])},
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )

import django  # noqa: E402

django.setup()

from django.core import signing  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

TABLE = "bench_bare_writes"
SALT = "bench.bare"


def token_for(customer_id: str) -> str:
    return signing.Signer(salt=SALT).sign(customer_id)


@csrf_exempt
def send(request: HttpRequest) -> JsonResponse:
    auth = request.headers.get("Authorization", "")
    try:
        customer_id = signing.Signer(salt=SALT).unsign(auth.removeprefix("Bearer "))
    except signing.BadSignature:
        return JsonResponse({"error": {"code": "unauthorized"}}, status=401)
    data = json.loads(request.body)
    with connection.cursor() as c:
        c.execute(f"INSERT INTO {TABLE} (id, customer_id, body) VALUES (%s, %s, %s)",
                  [uuid.UUID(data["message_id"]), uuid.UUID(customer_id), data["body"]])
    return JsonResponse({"message_id": data["message_id"]}, status=201)


urlpatterns = [path("send", send)]
application = get_asgi_application()
