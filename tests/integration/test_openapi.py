"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document of every route,
method and error of api.urls, that real answers conform to."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path, resolve
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api import urls
from api.http import api, doc
from api.openapi import Undocumented, build, document, openapi_path
from inbound import signatures
from notifications.vapid import b64url_encode, generate_vapid_keys
from outbound import types as outbound_types
from outbound.models import WebhookDelivery
from project.bootstrap import workflow
from tests.conftest import new_id
from tests.integration.webhook_support import (
    deliver_until,
    edits,
    integration,
    reads,
    receiver,  # noqa: F401  (fixture)
    register,
    run_pipeline,
    says,
    worker,
)
from tests.support import files
from workers import timers

pytestmark = pytest.mark.django_db(transaction=True)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
INTEGRATION_KEY = "test-integration-key"


# -- the document -------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1():
    spec = build()
    assert spec["openapi"] == "3.1.0"
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_it_is_served_unauthenticated_as_json_and_is_the_built_document(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/json"
    assert r.json() == json.loads(json.dumps(build()))
    assert document() is document()  # built once per process


def _routes() -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route of api.urls, from the views themselves."""
    found = set()
    for pattern in urls.urlpatterns:
        view = pattern.callback
        methods = getattr(view, "api_methods", None) or tuple(getattr(view, "api_docs", {}))
        assert methods, f"{view.__module__}.{view.__name__} is neither wrapped by api() nor documented with @doc"
        found |= {(openapi_path(str(pattern.pattern))[0], m.lower()) for m in methods}
    return found


def test_every_route_and_method_of_api_urls_is_an_operation_and_nothing_else_is():
    spec = build()
    described = {(p, m) for p, item in spec["paths"].items() for m in item if m in METHODS}
    assert described == _routes()


def test_every_path_resolves_to_the_view_it_describes():
    spec = build()
    for template, item in spec["paths"].items():
        concrete = template
        for op in item.values():
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    concrete = concrete.replace("{" + p["name"] + "}", "sms" if p["name"] == "source" else new_id())
        assert "{" not in concrete, template
        view = resolve(concrete).func
        assert {m.upper() for m in item} <= set(getattr(view, "api_methods", None) or view.api_docs), template


def test_every_operation_documents_a_success_and_its_errors_with_the_error_schema():
    spec = build()
    for template, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {template}"
            statuses = [int(s) for s in op["responses"]]
            assert any(200 <= s < 300 for s in statuses), where
            assert op["summary"] and op["operationId"], where
            for status, response in op["responses"].items():
                if int(status) >= 400 and int(status) != 503:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, where
                    assert response["x-error-codes"], where
            if op["security"]:  # authenticated: a refusal of the credentials is documented
                # (downloads tell a caller who may not see the file only 404, whoever they are)
                refusal = "404" if template.startswith("/api/v1/attachments/{attachment_id}/") else "401"
                assert refusal in op["responses"], where


def test_a_route_or_method_without_documentation_fails_the_build():
    @api(["GET", "POST"], "agent")
    @doc("GET", "Only one of two methods")
    def half(request, principal):
        return JsonResponse({})

    def plain(request):
        return HttpResponse()

    with pytest.raises(Undocumented, match=r"has no @doc for \['POST'\]"):
        build([path("api/v1/half", half)])
    with pytest.raises(Undocumented, match="has no @doc"):
        build([path("api/v1/plain", plain)])
    with pytest.raises(Undocumented, match="has no @doc"):
        build([*urls.urlpatterns, path("api/v1/new/<str:thing_id>", api(["GET"], "any")(plain))])


def test_an_operation_without_an_operation_id_a_person_chose_fails_the_build():
    def view(request, principal):
        return JsonResponse({})

    unnamed = api(["GET"], "agent")(doc("GET", "Something")(view))
    with pytest.raises(Undocumented, match="needs an operation_id"):
        build([path("api/v1/thing", unnamed)])
    snake = api(["GET"], "agent")(doc("GET", "Something", operation_id="get_thing")(view))
    with pytest.raises(Undocumented, match="needs an operation_id"):
        build([path("api/v1/thing", snake)])


def test_operation_ids_are_unique_camel_case_verbs():
    spec = build()
    ids = [op["operationId"] for item in [*spec["paths"].values(), *spec["webhooks"].values()] for op in item.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+[A-Z][A-Za-z0-9]*|search", i) for i in ids), ids
    ops = {(m, p): op["operationId"] for p, item in spec["paths"].items() for m, op in item.items()}
    assert ops["post", "/api/v1/customers"] == "registerCustomer"
    assert ops["post", "/api/v1/conversations/{customer_id}/claim"] == "claimConversation"
    assert ops["get", "/api/v1/badge"] == "getBadge"


def test_the_servers_are_the_public_url(settings):
    settings.PARLEY_PUBLIC_URL = "https://support.example.com"
    assert [s["url"] for s in build()["servers"]] == ["https://support.example.com"]


def _walk(node: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every JSON object of the document, with the keys that lead to it."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, (*where, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*where, str(i)))


def test_every_enum_and_object_is_a_named_component_schema():
    """So a generator names each after its component (one ConversationStatus, not
    one per place it is used), and no two generated types collide."""
    spec = build()
    for where, node in _walk(spec):
        top_level_schema = len(where) == 3 and where[:2] == ("components", "schemas")
        if "enum" in node:
            assert top_level_schema, f"an inline enum at {'/'.join(where)}: make it a component schema"
        if "properties" in node and where[-1] != "properties":  # a schema with properties (not a property named so)
            assert top_level_schema, f"an inline object at {'/'.join(where)}: make it a component schema"
    enums = [tuple(s["enum"]) for s in spec["components"]["schemas"].values() if "enum" in s]
    assert len(enums) == len(set(enums)), "two enum components with the same values"


def test_every_outbound_webhook_type_has_an_entry_in_the_webhooks_section():
    """A new type in outbound.types without a row in api/webhook_docs.py fails here."""
    spec = build()
    assert set(spec["webhooks"]) == set(outbound_types.TYPES)
    assert spec["components"]["schemas"]["WebhookEventType"]["enum"] == sorted(outbound_types.TYPES)
    for name, item in spec["webhooks"].items():
        envelope = item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"][envelope]
        assert schema["properties"]["type"] == {"type": "string", "const": name}
        assert {p["name"] for p in item["post"]["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_the_errors_that_follow_from_authentication_and_the_body_are_added_to_each_operation():
    responses = build()["paths"]["/api/v1/messages"]["post"]["responses"]
    codes = {s: r["x-error-codes"] for s, r in responses.items() if int(s) >= 400}
    assert set(codes["401"]) == {"not_authenticated", "invalid_token", "token_expired"}
    assert set(codes["403"]) == {"forbidden", "csrf_failed"}
    assert {"malformed_json", "invalid_json", "missing_field", "invalid_field", "invalid_body"} <= set(codes["400"])
    assert codes["409"] == ["message_id_conflict", "attachment_already_sent"]
    assert codes["413"] == ["body_too_large"] and codes["415"] == ["unsupported_media_type"]


# -- real answers against the document -------------------------------------------------


class Conformance:
    """Validates Django test-client answers against the document, and remembers
    which operations it saw answer (to check that every one was exercised)."""

    def __init__(self) -> None:
        self.spec = build()
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:parley-openapi", resource)
        self.seen: set[tuple[str, str, int]] = set()

    def validator(self, template: str, method: str, status: int) -> jsonschema.Draft202012Validator:
        """The response's schema; for a refusal, also only the codes it lists (``x-error-codes``)."""
        pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in
                           ["paths", template, method, "responses", str(status), "content", "application/json", "schema"])
        schema: dict[str, Any] = {"$ref": f"urn:parley-openapi#/{pointer}"}
        codes = self.spec["paths"][template][method]["responses"][str(status)].get("x-error-codes")
        if codes:
            schema = {"allOf": [schema, {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}
        return jsonschema.Draft202012Validator(
            schema, registry=self.registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )

    def check(self, response: Any, template: str, method: str, status: int) -> Any:
        """Assert ``response`` is ``status``, documented for the operation, and matches its schema."""
        assert response.status_code == status, response.content
        op = self.spec["paths"][template][method]
        assert str(status) in op["responses"], f"{method.upper()} {template} answered an undocumented {status}"
        self.seen.add((template, method, status))
        content = op["responses"][str(status)].get("content")
        if content is None:
            assert response.content == b""
            return None
        if "application/json" not in content:  # bytes (a download): of a documented type
            assert response["Content-Type"].split(";")[0] in content, response["Content-Type"]
            return response
        body = response.json()
        self.validator(template, method, status).validate(body)
        return body


@pytest.fixture
def conformance(settings) -> Iterator[Conformance]:
    settings.PARLEY_INTEGRATION_KEY = INTEGRATION_KEY
    settings.INBOUND_WEBHOOK_SECRETS = {"sms": ["whsec_test"]}
    keys = generate_vapid_keys()
    settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY = keys.private_key, keys.public_key
    yield Conformance()


def test_the_validator_refuses_what_the_document_does_not_allow():
    c = Conformance()
    message = {"message_id": new_id(), "customer_id": new_id(), "sender": {"kind": "agent", "id": "1", "name": "G"},
               "body": "hi", "sent_at": "2026-11-26T14:03:07.123456Z", "edited_at": None, "read_at": None,
               "attachments": [], "position": 1}
    ok = c.validator("/api/v1/messages", "post", 201)
    ok.validate({"message": message, "position": 1})
    for wrong in (
        {"message": {k: v for k, v in message.items() if k != "read_at"}, "position": 1},  # a field missing
        {"message": {**message, "sender": {**message["sender"], "kind": "bot"}}, "position": 1},
        {"message": {**message, "sent_at": "yesterday"}, "position": 1},
        {"message": message, "position": 1, "extra": True},  # an undocumented field
    ):
        with pytest.raises(jsonschema.ValidationError):
            ok.validate(wrong)
    errors = c.validator("/api/v1/messages", "post", 409)
    errors.validate({"error": {"code": "message_id_conflict", "detail": "taken"}})
    with pytest.raises(jsonschema.ValidationError):  # a code the operation does not document
        errors.validate({"error": {"code": "not_sender", "detail": "no"}})


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")


def _integration(client: Client, method: str, url: str, body: Any, key: str = INTEGRATION_KEY) -> Any:
    call = getattr(client, method)
    return call(url, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_real_answers_of_every_operation_conform_to_the_document(conformance, make_agent, project, client):
    c = conformance
    check = c.check
    check(client.get("/healthz"), "/healthz", "get", 200)
    check(client.get("/api/v1/openapi.json"), "/api/v1/openapi.json", "get", 200)

    # identity: the host application registers a customer; an agent logs in
    reg = "/api/v1/customers"
    created = check(_integration(client, "post", reg, {"name": "Ada", "external_id": "crm-1"}), reg, "post", 201)
    check(_integration(client, "post", reg, {"name": "Ada", "external_id": "crm-1"}), reg, "post", 200)
    check(_integration(client, "post", reg, {"name": "Ada", "email": "no"}), reg, "post", 400)
    check(_integration(client, "post", reg, {"name": "Ada"}, key="wrong"), reg, "post", 401)
    detail = "/api/v1/customers/{customer_id}"
    url = f"/api/v1/customers/{created['customer_id']}"
    check(_integration(client, "patch", url, {"name": "Ada Lovelace", "phone": "+44 20 7946 0000"}), detail, "patch", 200)
    check(_integration(client, "patch", f"/api/v1/customers/{new_id()}", {}), detail, "patch", 404)
    check(_integration(client, "patch", "/api/v1/customers/nope", {}), detail, "patch", 400)
    check(client.get(url, HTTP_AUTHORIZATION=f"Bearer {INTEGRATION_KEY}"), detail, "get", 200)
    check(client.get(f"/api/v1/customers/{new_id()}", HTTP_AUTHORIZATION=f"Bearer {INTEGRATION_KEY}"), detail, "get", 404)
    customer = Client(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    agent_caller = make_agent("grace")
    login = "/api/v1/auth/agent"
    check(client.post(login, {"username": "grace", "password": "wrong"}, content_type="application/json"), login, "post", 401)
    token = check(client.post(login, {"username": "grace", "password": "pw-grace"}, content_type="application/json"),
                  login, "post", 201)["token"]
    agent = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    team = check(agent.get("/api/v1/agents"), "/api/v1/agents", "get", 200)
    assert [a["name"] for a in team["agents"]] == ["Grace"]
    me = "/api/v1/agents/me"
    assert check(agent.get(me), me, "get", 200)["name"] == "Grace"
    renamed = check(agent.patch(me, {"display_name": "Grace H."}, content_type="application/json"), me, "patch", 200)
    assert renamed["name"] == "Grace H."
    check(agent.patch(me, {"display_name": "x" * 65}, content_type="application/json"), me, "patch", 400)
    check(agent.patch(me, {}, content_type="application/json"), me, "patch", 400)
    check(agent.patch(me, {"display_name": "Grace"}, content_type="application/json"), me, "patch", 200)

    # the customer writes
    mine = "/api/v1/messages"
    sent = check(customer.post(mine, {"message_id": (mid := new_id()), "body": "Hello"}, content_type="application/json"),
                 mine, "post", 201)
    check(customer.post(mine, {"message_id": mid, "body": "Hello"}, content_type="application/json"), mine, "post", 200)
    check(customer.post(mine, {"message_id": mid, "body": "Other"}, content_type="application/json"), mine, "post", 409)
    check(customer.post(mine, {"body": "Hello"}, content_type="application/json"), mine, "post", 400)
    check(customer.post(mine, "body=x", content_type="text/plain"), mine, "post", 415)
    check(client.post(mine, {}, content_type="application/json"), mine, "post", 401)
    check(agent.post(mine, {}, content_type="application/json"), mine, "post", 403)
    project()
    check(customer.get(mine, {"after": 0, "min_position": sent["position"]}), mine, "get", 200)
    check(customer.get(mine, {"after": 2**40}), mine, "get", 400)
    check(customer.get("/api/v1/badge"), "/api/v1/badge", "get", 200)

    # agents read and answer
    convs = "/api/v1/conversations"
    page = check(agent.get(convs, {"limit": 10}), convs, "get", 200)
    assert [c_["customer_id"] for c_ in page["conversations"]] == [created["customer_id"]]
    check(agent.get(convs, {"before": "yesterday"}), convs, "get", 400)
    check(customer.get(convs), convs, "get", 403)
    one = "/api/v1/conversations/{customer_id}"
    check(agent.get(f"{convs}/{created['customer_id']}"), one, "get", 200)
    check(agent.get(f"{convs}/{new_id()}"), one, "get", 404)
    thread = "/api/v1/conversations/{customer_id}/messages"
    check(agent.get(f"{convs}/{created['customer_id']}/messages"), thread, "get", 200)
    reply = check(agent.post(f"{convs}/{created['customer_id']}/messages", {"message_id": new_id(), "body": "Hi!"},
                             content_type="application/json"), thread, "post", 201)
    check(agent.post(f"{convs}/{new_id()}/messages", {"message_id": new_id(), "body": "Hi!"},
                     content_type="application/json"), thread, "post", 404)

    # attachments: upload (multipart), send, download
    up = "/api/v1/attachments"
    photo = check(customer.post(up, {"file": _upload("photo.png", files.png())}), up, "post", 201)
    check(customer.post(up, {"file": _upload("page.png", files.HTML)}), up, "post", 415)
    check(customer.post(up, {}), up, "post", 400)
    check(customer.post(up, {"a": 1}, content_type="application/json"), up, "post", 415)
    with override_settings(PARLEY_MAX_ATTACHMENT_BYTES=100):
        check(customer.post(up, {"file": _upload("big.png", files.png((300, 300)))}), up, "post", 413)
    check(client.post(up, {"file": _upload("photo.png", files.png())}), up, "post", 401)
    with_file = check(customer.post(mine, {"message_id": new_id(), "attachments": [photo["attachment_id"]]},
                                    content_type="application/json"), mine, "post", 201)
    check(customer.post(mine, {"message_id": new_id(), "attachments": [photo["attachment_id"]]},
                        content_type="application/json"), mine, "post", 409)
    check(customer.post(mine, {"message_id": new_id(), "attachments": [new_id()]}, content_type="application/json"),
          mine, "post", 400)
    shown = with_file["message"]["attachments"][0]
    content, thumb = "/api/v1/attachments/{attachment_id}/content", "/api/v1/attachments/{attachment_id}/thumbnail"
    check(customer.get(shown["url"]), content, "get", 200)
    check(agent.get(shown["thumbnail_url"]), thumb, "get", 200)
    check(client.get(shown["url"]), content, "get", 404)
    check(client.get(shown["thumbnail_url"]), thumb, "get", 404)

    # either side: edit, mark read
    edit, read = "/api/v1/messages/{message_id}", "/api/v1/messages/{message_id}/read"
    check(customer.patch(f"/api/v1/messages/{mid}", {"body": "Hello!"}, content_type="application/json"), edit, "patch", 200)
    check(agent.patch(f"/api/v1/messages/{mid}", {"body": "x"}, content_type="application/json"), edit, "patch", 403)
    check(agent.patch(f"/api/v1/messages/{new_id()}", {"body": "x"}, content_type="application/json"), edit, "patch", 404)
    check(customer.post(f"/api/v1/messages/{reply['message']['message_id']}/read"), read, "post", 200)
    check(customer.post(f"/api/v1/messages/{mid}/read"), read, "post", 403)
    check(agent.post(f"/api/v1/messages/{mid}/read"), read, "post", 200)
    check(agent.post("/api/v1/messages/not-a-uuid/read"), read, "post", 400)
    project()
    check(customer.get(mine, {"after": 0}), mine, "get", 200)
    check(agent.get(convs), convs, "get", 200)

    # search: a message and a customer found, and the refusals
    found, own = "/api/v1/search", "/api/v1/messages/search"
    assert check(agent.get(found, {"q": "hello", "limit": 5}), found, "get", 200)["results"][0]["message"]
    assert check(agent.get(found, {"q": "lovelace"}), found, "get", 200)["results"][0]["message"] is None
    check(agent.get(found, {"q": ""}), found, "get", 400)
    check(customer.get(found, {"q": "hello"}), found, "get", 403)
    check(client.get(found, {"q": "hello"}), found, "get", 401)
    assert check(customer.get(own, {"q": "hello"}), own, "get", 200)["results"]
    check(customer.get(own, {"q": "hello", "limit": 101}), own, "get", 400)
    check(agent.get(own, {"q": "hello"}), own, "get", 403)

    # team workflow
    linus = make_agent("linus")
    base = f"{convs}/{created['customer_id']}"
    wf = "/api/v1/conversations/{customer_id}/"
    check(agent.post(f"{base}/claim"), wf + "claim", "post", 200)
    check(linus.client.post(f"{base}/claim", HTTP_AUTHORIZATION=f"Bearer {linus.token}"), wf + "claim", "post", 409)
    check(agent.post(f"{convs}/{new_id()}/claim"), wf + "claim", "post", 404)
    check(agent.post(f"{base}/assign", {"agent_id": linus.id, "expected_assignee": agent_caller.id},
                     content_type="application/json"), wf + "assign", "post", 200)
    check(agent.post(f"{base}/assign", {"agent_id": None, "expected_assignee": agent_caller.id},
                     content_type="application/json"), wf + "assign", "post", 409)
    check(agent.post(f"{base}/assign", {"agent_id": "999999", "expected_assignee": linus.id},
                     content_type="application/json"), wf + "assign", "post", 404)
    check(agent.post(f"{base}/assign", {"agent_id": "x"}, content_type="application/json"), wf + "assign", "post", 400)
    check(agent.post(f"{base}/status", {"status": "pending"}, content_type="application/json"), wf + "status", "post", 200)
    check(agent.post(f"{base}/status", {"status": "snoozed"}, content_type="application/json"), wf + "status", "post", 400)
    check(agent.post(f"{base}/snooze", {"until": "2099-01-01T00:00:00Z"}, content_type="application/json"),
          wf + "snooze", "post", 400)
    check(agent.post(f"{base}/snooze", {"until": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()},
                     content_type="application/json"), wf + "snooze", "post", 200)
    note = {"note_id": new_id(), "body": "VIP customer"}
    check(agent.post(f"{base}/notes", note, content_type="application/json"), wf + "notes", "post", 201)
    check(agent.post(f"{base}/notes", note, content_type="application/json"), wf + "notes", "post", 200)
    check(agent.post(f"{base}/notes", {**note, "body": "other"}, content_type="application/json"), wf + "notes", "post", 409)
    check(agent.post(f"{base}/notes", {"note_id": new_id(), "body": " "}, content_type="application/json"),
          wf + "notes", "post", 400)
    check(customer.post(f"{base}/notes", note, content_type="application/json"), wf + "notes", "post", 403)
    labelled = check(agent.post(f"{base}/labels", {"add": ["VIP", "billing"]}, content_type="application/json"),
                     wf + "labels", "post", 200)
    assert labelled["conversation"]["labels"] == ["billing", "vip"]
    rate = "/api/v1/rating"
    check(customer.post(rate, {"score": 5}, content_type="application/json"), rate, "post", 400)  # not resolved
    check(agent.post(f"{base}/status", {"status": "resolved"}, content_type="application/json"), wf + "status", "post", 200)
    check(customer.post(rate, {"score": 5, "comment": "Thanks"}, content_type="application/json"), rate, "post", 201)
    check(customer.post(rate, {"score": 5, "comment": "Thanks"}, content_type="application/json"), rate, "post", 200)
    check(customer.post(rate, {"score": 9}, content_type="application/json"), rate, "post", 400)
    assert check(customer.get(rate), rate, "get", 200)["rating"]["score"] == 5
    check(agent.post(rate, {"score": 5}, content_type="application/json"), rate, "post", 403)
    for report in ("/api/v1/reports/summary", "/api/v1/reports/daily"):
        check(agent.get(report), report, "get", 200)
        check(agent.get(report, {"from": "2026-02-01", "to": "2026-01-01"}), report, "get", 400)
    check(agent.post(f"{base}/labels", {"add": ["no spaces"]}, content_type="application/json"), wf + "labels", "post", 400)
    check(agent.post(f"{base}/labels", {}, content_type="application/json"), wf + "labels", "post", 400)
    check(agent.post(f"{convs}/{new_id()}/labels", {"add": ["vip"]}, content_type="application/json"),
          wf + "labels", "post", 404)
    check(customer.post(f"{base}/labels", {"add": ["vip"]}, content_type="application/json"), wf + "labels", "post", 403)
    assert check(agent.post(f"{base}/unread"), wf + "unread", "post", 200)["conversation"]["marked_unread"]
    check(agent.post(f"{convs}/{new_id()}/unread"), wf + "unread", "post", 404)
    check(customer.post(f"{base}/unread"), wf + "unread", "post", 403)
    project()
    assert check(agent.get(convs, {"unread": "true", "label": "vip"}), convs, "get", 200)["conversations"][0]["marked_unread"]
    check(agent.get(convs, {"unread": "yes"}), convs, "get", 400)
    check(agent.get(convs, {"label": "not a label"}), convs, "get", 400)
    assert not check(agent.delete(f"{base}/unread"), wf + "unread", "delete", 200)["conversation"]["marked_unread"]
    assert check(agent.get("/api/v1/labels"), "/api/v1/labels", "get", 200)["labels"] == [
        {"label": "billing", "conversations": 1}, {"label": "vip", "conversations": 1}]
    check(customer.get("/api/v1/labels"), "/api/v1/labels", "get", 403)
    saved_replies, one_reply = "/api/v1/canned-responses", "/api/v1/canned-responses/{id}"
    reply_body = {"shortcut": "thanks", "title": "Thanks", "body": "Thank you, {{customer.first_name}}!"}
    saved = check(agent.post(saved_replies, reply_body, content_type="application/json"), saved_replies, "post", 201)
    check(agent.post(saved_replies, reply_body, content_type="application/json"), saved_replies, "post", 409)
    check(agent.post(saved_replies, {**reply_body, "body": "{{x}}"}, content_type="application/json"),
          saved_replies, "post", 400)
    assert check(agent.get(saved_replies), saved_replies, "get", 200)["canned_responses"][0]["id"] == saved["id"]
    check(customer.get(saved_replies), saved_replies, "get", 403)
    check(agent.patch(f"{saved_replies}/{saved['id']}", {"title": "Thank you"}, content_type="application/json"),
          one_reply, "patch", 200)
    check(linus.client.patch(f"{saved_replies}/{saved['id']}", json.dumps({"title": "x"}), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {linus.token}"), one_reply, "patch", 403)
    check(agent.patch(f"{saved_replies}/{new_id()}", {"title": "x"}, content_type="application/json"),
          one_reply, "patch", 404)
    check(agent.delete(f"{saved_replies}/{saved['id']}"), one_reply, "delete", 204)
    check(agent.delete(f"{saved_replies}/{saved['id']}"), one_reply, "delete", 404)
    project()
    check(agent.get(convs, {"status": "snoozed", "assignee": "me"}), convs, "get", 200)
    check(agent.get(convs, {"assignee": "nobody"}), convs, "get", 400)
    check(agent.get(f"{base}/messages"), thread, "get", 200)

    # push
    check(client.get("/api/v1/push/public-key"), "/api/v1/push/public-key", "get", 200)
    subs = "/api/v1/push-subscriptions"
    device = {"endpoint": f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}",
              "keys": {"p256dh": generate_vapid_keys().public_key, "auth": b64url_encode(os.urandom(16))}}
    sub = check(customer.post(subs, device, content_type="application/json"), subs, "post", 201)
    check(customer.post(subs, {**device, "endpoint": "http://evil.example"}, content_type="application/json"),
          subs, "post", 400)
    check(customer.delete(f"{subs}/{sub['subscription_id']}"), subs + "/{subscription_id}", "delete", 204)
    check(customer.delete(f"{subs}/{sub['subscription_id']}"), subs + "/{subscription_id}", "delete", 404)

    # outbound webhook endpoints (a local receiver's host:port is let through)
    eps = "/api/v1/webhook-endpoints"
    with override_settings(WEBHOOK_INSECURE_HOSTS=["127.0.0.1:9"]):
        ep = check(_integration(client, "post", eps, {"url": "http://127.0.0.1:9/hook", "events": ["message.created"]}),
                   eps, "post", 201)
    check(_integration(client, "post", eps, {"url": "https://127.0.0.1/hook", "events": ["message.created"]}),
          eps, "post", 400)
    check(_integration(client, "post", eps, {"url": "https://example.com/", "events": ["note.created"]}), eps, "post", 400)
    check(client.get(eps, HTTP_AUTHORIZATION=f"Bearer {INTEGRATION_KEY}"), eps, "get", 200)
    rotate = eps + "/{endpoint_id}/rotate-secret"
    check(_integration(client, "post", f"{eps}/{ep['endpoint_id']}/rotate-secret", {}), rotate, "post", 200)
    check(_integration(client, "post", f"{eps}/{new_id()}/rotate-secret", {}), rotate, "post", 404)
    check(_integration(client, "delete", f"{eps}/{ep['endpoint_id']}", None), eps + "/{endpoint_id}", "delete", 204)
    check(_integration(client, "delete", f"{eps}/{ep['endpoint_id']}", None), eps + "/{endpoint_id}", "delete", 404)

    # an external channel
    hook = "/webhooks/v1/inbound/{source}"
    raw = json.dumps({"event_id": "e-1", "customer": {"external_id": "+447700900123"}, "text": "Hi"}).encode()
    signed = signatures.header_value(["whsec_test"], int(time.time()), raw)
    check(client.post("/webhooks/v1/inbound/sms", raw, content_type="application/json", HTTP_X_PARLEY_SIGNATURE=signed),
          hook, "post", 202)
    check(client.post("/webhooks/v1/inbound/sms", raw, content_type="application/json", HTTP_X_PARLEY_SIGNATURE="t=1"),
          hook, "post", 401)
    check(client.post("/webhooks/v1/inbound/fax", raw, content_type="application/json"), hook, "post", 404)

    # the website widget: its settings, a visitor's sign-up, who a token speaks for, its logout
    w = "/api/v1/widget"
    assert check(client.get(w), w, "get", 200)["business_hours"] is None
    visitors, me = "/api/v1/widget/visitors", "/api/v1/widget/me"
    visitor = check(client.post(visitors, {"name": "Vera", "email": "vera@example.com"}, content_type="application/json"),
                    visitors, "post", 201)
    check(client.post(visitors, {"name": "Vera", "email": "not an address"}, content_type="application/json"),
          visitors, "post", 400)
    with override_settings(PARLEY_VISITOR_SIGNUP=False):
        check(client.post(visitors, {"name": "Vera", "email": "vera@example.com"}, content_type="application/json"),
              visitors, "post", 404)
    with override_settings(PARLEY_VISITOR_SIGNUPS_PER_HOUR=0):
        check(client.post(visitors, {"name": "Vera", "email": "vera@example.com"}, content_type="application/json"),
              visitors, "post", 429)
    assert check(Client(HTTP_AUTHORIZATION=f"Bearer {visitor['token']}").get(me), me, "get", 200)["name"] == "Vera"
    check(client.get(me), me, "get", 401)
    check(agent.get(me), me, "get", 403)
    logout = "/api/v1/widget/logout"
    check(Client(HTTP_AUTHORIZATION=f"Bearer {visitor['token']}").post(logout), logout, "post", 204)
    check(client.post(logout), logout, "post", 401)
    check(agent.post(logout), logout, "post", 403)

    # privacy: the export of a customer, then their erasure (twice: the second changes nothing)
    export, erase = "/api/v1/customers/{customer_id}/export", "/api/v1/customers/{customer_id}/erase"
    check(client.get(f"{url}/export", HTTP_AUTHORIZATION=f"Bearer {INTEGRATION_KEY}"), export, "get", 200)
    check(client.get(f"{url}/export"), export, "get", 401)
    check(client.get(f"/api/v1/customers/{new_id()}/export", HTTP_AUTHORIZATION=f"Bearer {INTEGRATION_KEY}"),
          export, "get", 404)
    check(_integration(client, "post", f"{url}/erase", None), erase, "post", 202)
    check(_integration(client, "post", f"{url}/erase", None), erase, "post", 202)
    check(_integration(client, "post", f"/api/v1/customers/{new_id()}/erase", None), erase, "post", 404)
    check(client.get(f"{url}/export", HTTP_AUTHORIZATION=f"Bearer {INTEGRATION_KEY}"), export, "get", 404)

    # and the agent's token goes
    revoke = "/api/v1/auth/agent/token"
    check(agent.delete(revoke), revoke, "delete", 204)
    check(agent.delete(revoke), revoke, "delete", 401)
    assert agent_caller.token  # the fixture's own token is another one, still valid

    every = {(p, m) for p, item in c.spec["paths"].items() for m in item}
    answered = {(p, m) for p, m, status in c.seen if status < 300}
    assert every - answered == set(), "operations this test never saw succeed: add them above"


# -- outbound webhooks against the document's ``webhooks`` -------------------------------------


def test_real_deliveries_of_every_webhook_type_conform_to_the_webhooks_section(receiver, client, customer, agent,
                                                                                settings):
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 60
    register(client, receiver, sorted(outbound_types.TYPES))
    asked = says(customer, "Where is my order?")
    edits(customer, asked, "Where is my order #42?")
    answer = says(customer, "On its way", agent=agent)
    reads(customer, answer)
    assert integration(client, "patch", f"/api/v1/customers/{customer.id}", {"name": "Ada King"}).status_code == 200
    base = f"/api/v1/conversations/{customer.id}"
    assert agent.post(f"{base}/notes", {"note_id": new_id(), "body": "VIP"}).status_code == 201
    says(customer, "Hello??")  # a new waiting period: its first-response timer breaches below
    assert agent.post(f"{base}/status", {"status": "pending"}).status_code == 200
    run_pipeline()
    workflow().catch_up()
    assert timers.fire_due(now=datetime.now(timezone.utc) + timedelta(hours=1)) == 1
    run_pipeline()
    assert agent.post(f"{base}/status", {"status": "resolved"}).status_code == 200
    run_pipeline()
    rating = customer.post("/api/v1/rating", {"score": 5, "comment": "Quick"}, content_type="application/json")
    assert rating.status_code == 201, rating.content
    run_pipeline()
    sent = WebhookDelivery.objects.count()
    assert sent >= len(outbound_types.TYPES)
    deliver_until(worker(), receiver, sent)
    # And the last word about a customer: erased, every other delivery about them is gone.
    assert integration(client, "post", f"/api/v1/customers/{customer.id}/erase").status_code == 202
    run_pipeline()
    deliver_until(worker(), receiver, sent + 1)

    spec = build()
    registry = Registry().with_resource("urn:parley-openapi", Resource.from_contents(spec, default_specification=DRAFT202012))
    bodies = [r.body for r in receiver.accepted()]
    assert {b["type"] for b in bodies} == set(outbound_types.TYPES)
    for body in bodies:
        schema = spec["webhooks"][body["type"]]["post"]["requestBody"]["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(
            {"$ref": "urn:parley-openapi#" + schema["$ref"].removeprefix("#")}, registry=registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        validator.validate(body)
