"""The API's JSON shapes as JSON Schema (2020-12, as OpenAPI 3.1 uses it).

Shared by the operations' documentation (``@doc`` in the endpoint modules)
and api.openapi, which puts them under ``components``. Response objects are
closed (``additionalProperties: false``) so that a field added to an answer
without documenting it here fails the schema tests; request bodies are open,
because the API ignores fields it does not read.
"""

from __future__ import annotations

from typing import Any

from chat.commands import MAX_ATTACHMENTS, MAX_BODY_CHARS


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def closed(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties, ``required`` among them."""
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC (`2026-11-26T14:03:07.123456Z`)"}
POSITION = {"type": "integer", "minimum": 0, "description": "A position in Parley's log (opaque, increasing)."}


def text(max_length: int, description: str = "", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, **extra}
    if description:
        schema["description"] = description
    return schema


def optional_text(max_length: int, description: str = "") -> dict[str, Any]:
    """A string field that may be absent or null (both mean "not given")."""
    return {"type": ["string", "null"], "maxLength": max_length, "description": description}


#: What an attachment can be (attachments.sniff).
ATTACHMENT_TYPES = ["application/pdf", "image/gif", "image/jpeg", "image/png", "image/webp", "text/plain"]

#: The webhook event types an endpoint may subscribe to (outbound.types).
WEBHOOK_TYPES = [
    "conversation.sla_breached", "conversation.updated", "customer.updated", "message.created", "message.edited",
    "message.read", "note.created",
]

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        **closed(["error"], error=closed(["code", "detail"], code={"type": "string"}, detail={"type": "string"})),
        "description": "Every refusal: a stable `code` and a sentence for a person.",
    },
    # -- identity
    "AgentCredentials": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": text(150), "password": text(4096, format="password")},
    },
    "AgentList": closed(
        ["agents"],
        agents={"type": "array", "items": closed(
            ["id", "name", "online", "username"],
            id={"type": "string", "description": "the agent's id (`agent_id` in assign)"},
            name={"type": "string", "description": "what customers see (the profile's name)"},
            online={"type": "boolean", "description": "has the dashboard open now"},
            username={"type": "string", "description": "the login, for agents' eyes only"},
        )},
    ),
    "AgentProfile": closed(
        ["id", "username", "display_name", "name"],
        id={"type": "string"},
        username={"type": "string", "description": "the login: never shown to customers"},
        display_name={"type": "string", "maxLength": 64, "description": "what the agent chose; empty: none"},
        name={"type": "string", "description": "what everyone sees: `display_name`, else the full name, else "
              "\"Support\""},
    ),
    "AgentProfileUpdate": {
        "type": "object", "required": ["display_name"],
        "properties": {"display_name": text(20_000, "up to 64 characters after trimming; empty clears it")},
    },
    "AgentToken": closed(["token"], token={"type": "string", "description": "`pa_...`: use as `Authorization: Bearer`"}),
    "CustomerRegistration": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": text(200, "1 to 200 characters after trimming"),
            "email": optional_text(254, "an email address, or empty"),
            "phone": optional_text(32, "digits with an optional `+` and separators, or empty"),
            "external_id": optional_text(200, "the host application's id: registering it again finds the same customer"),
        },
    },
    "CustomerToken": closed(
        ["customer_id", "token"],
        customer_id=UUID,
        token={"type": "string", "description": "`pc.<customer id>:...`: use as `Authorization: Bearer`"},
    ),
    "ContactDetailsUpdate": {
        "type": "object",
        "properties": {"name": optional_text(200), "email": optional_text(254), "phone": optional_text(32)},
    },
    "ContactDetails": closed(
        ["customer_id", "name", "email", "phone"],
        customer_id=UUID, name={"type": "string"}, email={"type": "string"}, phone={"type": "string"},
    ),
    "Erasure": closed(
        ["customer_id", "erased"],
        customer_id=UUID,
        erased={"type": "boolean", "description": "true if this request erased them, false if they were erased before"},
    ),
    "CustomerExport": {
        "type": "object",
        "required": ["customer_id", "exported_at", "contact", "messages", "notes", "ratings"],
        "description": "Everything Parley holds about the customer (docs/privacy.md)",
        "properties": {
            "customer_id": UUID,
            "exported_at": {"type": "string", "format": "date-time"},
            "contact": {"type": "object"},
            "messages": {"type": "array", "items": {"type": "object"}},
            "notes": {"type": "array", "items": {"type": "object"}},
            "ratings": {"type": "array", "items": {"type": "object"}},
        },
    },
    # -- messages
    "Sender": closed(
        ["kind", "id", "name"],
        kind={"enum": ["customer", "agent"]},
        id={"type": "string", "description": "the customer's UUID, or the agent's user id"},
        name={"type": "string", "description": "a customer's current name in the directory; an agent's current "
              "name (their profile's display name, never their login)"},
    ),
    "Attachment": closed(
        ["attachment_id", "name", "content_type", "size", "url", "thumbnail_url"],
        attachment_id=UUID,
        name={"type": "string", "description": "the uploader's file name (show it as text)"},
        content_type={"enum": ATTACHMENT_TYPES, "description": "read from the bytes at upload"},
        size={"type": "integer", "minimum": 1, "description": "bytes"},
        url={"type": "string", "description": "where the conversation's customer and agents download it "
             "(relative to this server; a cookie or bearer token authenticates)"},
        thumbnail_url={**nullable({"type": "string"}), "description": "an image's thumbnail (at most 320×320); "
                       "null for other files"},
    ),
    "UploadedAttachment": closed(
        ["attachment_id", "name", "content_type", "size"],
        attachment_id={**UUID, "description": "name it in a send's `attachments` within 24 hours"},
        name={"type": "string"}, content_type={"enum": ATTACHMENT_TYPES}, size={"type": "integer", "minimum": 1},
    ),
    "Message": closed(
        ["message_id", "customer_id", "sender", "body", "sent_at", "edited_at", "read_at", "attachments", "position"],
        message_id=UUID,
        customer_id=UUID,
        sender=ref("Sender"),
        body={"type": "string", "maxLength": MAX_BODY_CHARS,
              "description": "plain text, stripped; empty only in a message with attachments"},
        sent_at=TIME,
        edited_at=nullable(TIME),
        read_at=nullable(TIME),
        attachments={"type": "array", "items": ref("Attachment"), "maxItems": MAX_ATTACHMENTS},
        position={**POSITION, "description": "the position of the message's latest change"},
    ),
    "SendMessage": {
        "type": "object",
        "required": ["message_id"],
        "properties": {
            "message_id": {**UUID, "description": "generated by the client (UUID v4): a retry names the same message"},
            "body": text(20_000, f"1 to {MAX_BODY_CHARS} characters after stripping; required, unless the message "
                         "has attachments (then it may be empty or absent)"),
            "attachments": {"type": "array", "items": UUID, "maxItems": MAX_ATTACHMENTS, "uniqueItems": True,
                            "description": "ids of files the sender uploaded (`POST /api/v1/attachments`) and has "
                            "not sent with another message"},
        },
    },
    "EditMessage": {"type": "object", "required": ["body"], "properties": {"body": text(20_000)}},
    "Written": closed(
        ["message", "position"],
        message=ref("Message"),
        position={**POSITION, "description": "of the write: use it as `min_position`, never as `after`"},
    ),
    "ReadReceipt": closed(["position", "read_at"], position=POSITION, read_at=TIME),
    "MessagePage": closed(["messages", "position"], messages={"type": "array", "items": ref("Message")}, position=POSITION),
    "Badge": closed(["unread", "position"], unread={"type": "integer", "minimum": 0}, position=POSITION),
    "LastMessage": closed(
        ["message_id", "sender", "preview", "sent_at", "edited"],
        message_id=UUID, sender=ref("Sender"), preview={"type": "string"}, sent_at=TIME, edited={"type": "boolean"},
    ),
    "Assignee": closed(["id", "name"], id={"type": "string", "description": "the agent's user id"},
                       name={"type": "string"}),
    "Conversation": closed(
        ["customer_id", "customer_name", "last_message", "unread_for_agents", "awaiting_reply", "last_activity_at",
         "status", "assignee", "snoozed_until", "first_response_due_at", "sla_breached", "labels", "position"],
        customer_id=UUID,
        customer_name={"type": "string"},
        last_message={**nullable(ref("LastMessage")), "description": "null while no message was written"},
        unread_for_agents={"type": "integer", "minimum": 0},
        awaiting_reply={"type": "boolean", "description": "the customer spoke last"},
        last_activity_at=TIME,
        status={"enum": ["open", "pending", "snoozed", "resolved"]},
        assignee=nullable(ref("Assignee")),
        snoozed_until={**nullable(TIME), "description": "while snoozed: when it reopens"},
        first_response_due_at={**nullable(TIME),
                               "description": "while the customer waits for a first reply (with a target configured)"},
        sla_breached={"type": "boolean", "description": "the current waiting period passed its first-response target"},
        labels={"type": "array", "items": {"type": "string"}, "description": "sorted, lower case"},
        marked_unread={"type": "boolean", "description": "the calling agent marked it unread (HTTP answers to "
                       "agents only: frames and webhooks, which every agent or the host application shares, leave "
                       "it out; `conversation.unread` frames announce it)"},
        position=POSITION,
    ),
    "ConversationWritten": closed(
        ["conversation", "position"], conversation=ref("Conversation"),
        position={**POSITION, "description": "of the write: use it as `min_position`, never as `after`"},
    ),
    "AssignConversation": {
        "type": "object",
        "required": ["agent_id", "expected_assignee"],
        "properties": {
            "agent_id": {"type": ["string", "integer", "null"], "description": "the new assignee; null unassigns"},
            "expected_assignee": {"type": ["string", "integer", "null"],
                                  "description": "the assignee the caller saw; null: unassigned"},
        },
    },
    "ConversationStatus": {"type": "object", "required": ["status"],
                           "properties": {"status": {"enum": ["open", "pending", "resolved"]}}},
    "SnoozeConversation": {"type": "object", "required": ["until"],
                           "properties": {"until": {"type": "string", "format": "date-time", "maxLength": 64}}},
    "ChangeLabels": {
        "type": "object",
        "properties": {
            "add": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            "remove": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
        },
    },
    "CannedResponse": closed(
        ["id", "shortcut", "title", "body", "author", "created_at", "updated_at"],
        id=UUID, shortcut={"type": "string", "maxLength": 32, "description": "typed after `/` in the composer"},
        title={"type": "string", "maxLength": 80},
        body={"type": "string", "description": "may hold {{customer.name}}, {{customer.first_name}}, {{agent.name}}, "
              "{{agent.first_name}}: filled in by the dashboard when inserted"},
        author={**ref("Assignee"), "description": "who wrote it: they alone change it"},
        created_at=TIME, updated_at=TIME,
    ),
    "CannedResponseList": closed(["canned_responses"],
                                 canned_responses={"type": "array", "items": ref("CannedResponse")}),
    "CannedResponseCreate": {
        "type": "object", "required": ["shortcut", "title", "body"],
        "properties": {"shortcut": text(200), "title": text(200), "body": text(20_000)},
    },
    "CannedResponseUpdate": {
        "type": "object",
        "properties": {"shortcut": text(200), "title": text(200), "body": text(20_000)},
    },
    "LabelList": closed(["labels"], labels={"type": "array", "items": closed(
        ["label", "conversations"], label={"type": "string"}, conversations={"type": "integer", "minimum": 1})}),
    "AddNote": {
        "type": "object",
        "required": ["note_id", "body"],
        "properties": {
            "note_id": {**UUID, "description": "generated by the client: a retry names the same note"},
            "body": text(20_000, "1 to 4000 characters after stripping"),
        },
    },
    "Note": closed(
        ["kind", "note_id", "customer_id", "author", "body", "created_at", "position"],
        kind={"const": "note"}, note_id=UUID, customer_id=UUID, author=ref("Assignee"),
        body={"type": "string", "minLength": 1, "maxLength": 4000}, created_at=TIME,
        position={**POSITION, "description": "where the note is in the log"},
    ),
    "NoteWritten": closed(["note", "position"], note=ref("Note"), position=POSITION),
    "AgentMessagePage": closed(
        ["messages", "position"],
        messages={"type": "array", "items": {"anyOf": [ref("Message"), ref("Note")]},
                  "description": "messages, and private notes (`kind: note`)"},
        position=POSITION,
    ),
    "ConversationPage": closed(
        ["conversations", "position"], conversations={"type": "array", "items": ref("Conversation")}, position=POSITION,
    ),
    "CustomerProfile": closed(
        ["customer_id", "name", "email", "phone", "external_id", "origin"],
        customer_id=UUID, name={"type": "string"}, email={"type": "string"}, phone={"type": "string"},
        external_id={"type": ["string", "null"]},
        origin={
            "type": ["string", "null"], "enum": ["form", "api", "webhook", None],
            "description": "how the customer came: the visitor form, POST /api/v1/customers, an inbound webhook; "
            "null when not known",
        },
    ),
    "ConversationDetail": closed(
        ["conversation", "customer"],
        conversation={**nullable(ref("Conversation")), "description": "null until the customer's first message"},
        customer={**nullable(ref("CustomerProfile")), "description": "null until the directory has the customer"},
    ),
    # -- search
    "SearchResult": closed(
        ["kind", "message", "customer_id", "customer_name", "highlight"],
        kind={"enum": ["message", "customer"], "description": "what matched: a message's text, or a customer's name "
              "or email"},
        message={**nullable(ref("Message")), "description": "the message that matched; null for a customer"},
        customer_id=UUID,
        customer_name={"type": "string"},
        highlight={"type": "string", "description": "the best fragment of the matched text: each match between "
                   "U+0002 and U+0003, U+2026 where the fragment cuts the text. Plain text, never HTML."},
    ),
    "SearchResults": closed(
        ["results", "position"], results={"type": "array", "items": ref("SearchResult"), "description": "best first"},
        position={**POSITION, "description": "the position the search index is current to"},
    ),
    # -- push
    "PushPublicKey": closed(["public_key"], public_key={"type": "string", "description": "base64url, uncompressed P-256"}),
    "PushSubscription": {
        "type": "object",
        "required": ["endpoint", "keys"],
        "description": "`PushSubscription.toJSON()`",
        "properties": {
            "endpoint": text(4096, "an https URL of a known push service", format="uri"),
            "keys": {
                "type": "object",
                "required": ["p256dh", "auth"],
                "properties": {"p256dh": text(200), "auth": text(100)},
            },
        },
    },
    "PushSubscriptionId": closed(["subscription_id"], subscription_id=UUID),
    # -- outbound webhooks
    "WebhookEndpointRegistration": {
        "type": "object",
        "required": ["url", "events"],
        "properties": {
            "url": text(2048, "https; must not resolve to loopback, private or link-local addresses"),
            "events": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": WEBHOOK_TYPES}},
        },
    },
    "WebhookEndpointSecret": closed(
        ["endpoint_id", "secret"], endpoint_id=UUID,
        secret={"type": "string", "description": "`whsec_<base64>`, shown once"},
    ),
    "WebhookEndpoint": closed(
        ["endpoint_id", "url", "events", "created_at", "disabled", "disabled_reason"],
        endpoint_id=UUID, url={"type": "string"},
        events={"type": "array", "items": {"type": "string"}}, created_at=TIME,
        disabled={"type": "boolean", "description": "the receiver answered 410 Gone"},
        disabled_reason={"type": "string"},
    ),
    "WebhookEndpointList": closed(["endpoints"], endpoints={"type": "array", "items": ref("WebhookEndpoint")}),
    # -- inbound webhooks
    "InboundMessage": {
        "type": "object",
        "required": ["customer", "text"],
        "properties": {
            "event_id": optional_text(200, "the delivery's id, the same on every retry"),
            "customer": {
                "type": "object",
                "required": ["external_id"],
                "properties": {"external_id": text(160), "name": optional_text(200)},
            },
            "text": {"type": "string", "description": f"1 to {MAX_BODY_CHARS} characters after trimming"},
            "sent_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 64,
                        "description": "RFC 3339 with an offset; default: when Parley stores it"},
        },
    },
    "InboundReceipt": closed(
        ["message_id", "duplicate"],
        message_id=UUID,
        duplicate={"type": "boolean", "description": "true for every copy but the one that stored it"},
    ),
    # -- the website widget (docs/widget.md)
    "WidgetSettings": closed(
        ["name", "greeting", "color", "online", "business_hours", "reply_time", "visitor_signup", "origins"],
        name={"type": "string", "description": "`PARLEY_WIDGET_NAME`: the widget's title"},
        greeting={"type": "string", "description": "`PARLEY_WIDGET_GREETING`: the first words a customer reads"},
        color={"type": "string", "pattern": "^#[0-9a-f]{6}$", "description": "`PARLEY_WIDGET_COLOR`"},
        online={"type": "boolean", "description": "an agent has the dashboard open now"},
        business_hours={"type": "null", "description": "opening hours: always null until Parley knows them"},
        reply_time=nullable({"type": "string", "description": "`PARLEY_WIDGET_REPLY_TIME`, for a person"}),
        visitor_signup={"type": "boolean", "description": "visitors the host did not sign in may start a chat"},
        origins={"type": "array", "items": {"type": "string"},
                 "description": "`PARLEY_WIDGET_ORIGINS`: the host sites that may embed the widget"},
    ),
    "VisitorSignup": {
        "type": "object",
        "required": ["name", "email"],
        "properties": {"name": text(200, "1 to 200 characters after trimming"), "email": text(254, "an email address")},
    },
    "WidgetIdentity": closed(
        ["customer_id", "name", "email"], customer_id=UUID, name={"type": "string"}, email={"type": "string"},
    ),
    # -- operations
    "Health": {
        "type": "object",
        "required": ["database", "channel_layer", "realtime"],
        "properties": {
            "database": {"type": "string", "description": "`ok`, or `error: ...`"},
            "channel_layer": {"type": "string", "description": "`ok`, or `error: ...`"},
            "realtime": {"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}}},
            "consumers": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["position", "lag", "running"],
                    "properties": {
                        "position": POSITION,
                        "lag": {"type": "integer", "minimum": 0},
                        "owner": {"type": "string"},
                        "lease_until": nullable({"type": "string"}),
                        "running": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"], "description": "This document."},
}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "agentToken": {"type": "http", "scheme": "bearer", "bearerFormat": "pa_...",
                   "description": "An agent token from `POST /api/v1/auth/agent`."},
    "agentSession": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                     "description": "An agent's Django session (the dashboard); writes need `X-CSRFToken`."},
    "customerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "pc.<customer id>:...",
                      "description": "A customer token from `POST /api/v1/customers`."},
    "customerCookie": {"type": "apiKey", "in": "cookie", "name": "parley_customer",
                       "description": "The chat page's cookie; writes need `X-CSRFToken`."},
    "integrationKey": {"type": "http", "scheme": "bearer",
                       "description": "`PARLEY_INTEGRATION_KEY`, for the host application (server to server)."},
    "webhookSignature": {"type": "apiKey", "in": "header", "name": "X-Parley-Signature",
                         "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>` "
                                        "(docs/webhooks.md)."},
}

AUDIENCE_SECURITY: dict[str | None, list[str]] = {
    "customer": ["customerToken", "customerCookie"],
    "agent": ["agentToken", "agentSession"],
    "any": ["customerToken", "customerCookie", "agentToken", "agentSession"],
    None: [],
}


# -- parameters (``x-errors``: what a bad value answers; api.openapi moves them to the responses)


def query(name: str, schema: dict[str, Any], description: str, errors: list[tuple[int, str]]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description,
            "x-errors": errors}


def integer(default: int, low: int = 0, high: int = 2**62) -> dict[str, Any]:
    """The schema of a query_int parameter."""
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


CORRELATION_ID = {
    "name": "X-Correlation-Id", "in": "header", "required": False, "schema": UUID,
    "description": "Recorded with the event (a fresh one when absent or not a UUID).",
}
# A path parameter read with parse_uuid.
UUID_PATH = {"schema": UUID, "x-errors": [(400, "invalid_field")]}
