"""The API's JSON shapes as JSON Schema (2020-12, as OpenAPI 3.1 uses it).

Shared by the operations' documentation (``@doc`` in the endpoint modules)
and api.openapi, which puts them under ``components``. Response objects are
closed (``additionalProperties: false``) so that a field added to an answer
without documenting it here fails the schema tests; request bodies are open,
because the API ignores fields it does not read.
"""

from __future__ import annotations

from typing import Any

from api.webhook_docs import WEBHOOKS
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

#: The webhook event types an endpoint may subscribe to (outbound.types; a test keeps the two equal).
WEBHOOK_TYPES = sorted(WEBHOOKS)

#: The figures of a report, of the team, an agent or a day (readmodels.reports).
REPORT_FIGURES: dict[str, Any] = {
    "conversations": {"type": "integer", "minimum": 0,
                      "description": "conversations started: a customer's message to a conversation not open already"},
    "resolved": {"type": "integer", "minimum": 0},
    "messages": ref("ReportMessages"),
    "first_response_seconds": {**ref("ReportSpread"), "description": "an agent's first reply, in business seconds"},
    "resolution_seconds": {**ref("ReportSpread"), "description": "from the start to the resolution, in business seconds"},
    "rating": ref("ReportRatings"),
    "sla_breaches": {"type": "integer", "minimum": 0},
}
#: The named parts of a report's figures.
REPORT_PARTS: dict[str, dict[str, Any]] = {
    "ReportMessages": closed(["customer", "agent"], customer={"type": "integer"}, agent={"type": "integer"}),
    "ReportSpread": closed(["count", "p50", "p90"], count={"type": "integer", "minimum": 0},
                           p50=nullable({"type": "number"}), p90=nullable({"type": "number"})),
    "ReportRatings": closed(["count", "average", "distribution"], count={"type": "integer"},
                            average=nullable({"type": "number"}), distribution=ref("ReportRatingDistribution")),
    "ReportRatingDistribution": {"type": "object", "additionalProperties": {"type": "integer"},
                                 "description": "ratings per score, \"1\" to \"5\""},
}
REPORT_RANGE: dict[str, Any] = {
    "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
    "agent": nullable({"type": "string", "description": "the agent the report is limited to"}),
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        **closed(["error"], error=ref("ErrorDetail")),
        "description": "Every refusal (each 4xx of every operation): a stable `code` and a sentence for a person.",
    },
    "ErrorDetail": closed(
        ["code", "detail"],
        code={"type": "string", "description": "snake_case and stable: each operation's responses list the codes "
              "it can answer under each status (in the response's description and `x-error-codes`)"},
        detail={"type": "string", "description": "a sentence for a person; it may change"},
    ),
    # -- identity
    "AgentCredentials": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": text(150), "password": text(4096, format="password")},
    },
    "Agent": closed(
        ["id", "name", "online", "username"],
        id={"type": "string", "description": "the agent's id (`agent_id` in assign)"},
        name={"type": "string", "description": "what customers see (the profile's name)"},
        online={"type": "boolean", "description": "has the dashboard open now"},
        username={"type": "string", "description": "the login, for agents' eyes only"},
    ),
    "AgentList": closed(["agents"], agents={"type": "array", "items": ref("Agent")}),
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
    "CustomerExport": closed(
        ["customer_id", "exported_at", "contact", "messages", "notes", "ratings"],
        customer_id=UUID,
        exported_at={"type": "string", "format": "date-time"},
        contact=ref("ExportedContact"),
        messages={"type": "array", "items": ref("ExportedMessage")},
        notes={"type": "array", "items": ref("ExportedNote")},
        ratings={"type": "array", "items": ref("ExportedRating")},
    ),
    "ExportedContact": closed(
        ["name", "email", "phone", "external_id", "registered_at", "history", "unsubscribed"],
        name={"type": "string"}, email={"type": "string"}, phone={"type": "string"},
        external_id=nullable({"type": "string"}),
        registered_at={"type": "string", "format": "date-time"},
        history={"type": "array", "items": ref("ExportedContactVersion"),
                 "description": "the contact details as registered, then after each change"},
        unsubscribed={"type": "array", "items": ref("ExportedUnsubscription")},
    ),
    "ExportedContactVersion": closed(
        ["at", "name", "email", "phone"], at={"type": "string", "format": "date-time"},
        name={"type": "string"}, email={"type": "string"}, phone={"type": "string"},
    ),
    "ExportedUnsubscription": closed(["email", "at"], email={"type": "string"},
                                     at={"type": "string", "format": "date-time"}),
    "ExportedMessage": closed(
        ["message_id", "sender", "body", "original_body", "sent_at", "attachments", "edits", "reads"],
        message_id=UUID, sender=ref("Sender"), body={"type": "string", "description": "the current text"},
        original_body={"type": "string", "description": "the text as first sent, before any edit"},
        sent_at={"type": "string", "format": "date-time"},
        attachments={"type": "array", "items": ref("Attachment")},
        edits={"type": "array", "items": ref("ExportedEdit")},
        reads={"type": "array", "items": ref("ExportedRead")},
    ),
    "ExportedEdit": closed(["body", "edited_at"], body={"type": "string", "description": "the text this edit made"},
                           edited_at={"type": "string", "format": "date-time"}),
    "ExportedRead": closed(["reader_kind", "reader_id", "read_at"], reader_kind=ref("SenderKind"),
                           reader_id={"type": "string"}, read_at={"type": "string", "format": "date-time"}),
    "ExportedNote": closed(
        ["note_id", "author_id", "author_name", "body", "added_at"], note_id=UUID, author_id={"type": "string"},
        author_name={"type": "string"}, body={"type": "string"}, added_at={"type": "string", "format": "date-time"},
    ),
    "ExportedRating": closed(
        ["resolution", "score", "comment", "rated_at"],
        resolution={"type": "integer", "minimum": 1, "description": "which resolved period it rates (1 for the first)"},
        score={"type": "integer", "minimum": 1, "maximum": 5}, comment={"type": "string"},
        rated_at={"type": "string", "format": "date-time"},
    ),
    # -- messages
    "ReportFormat": {"type": "string", "enum": ["json", "csv"], "description": "a report as JSON or as a CSV file"},
    "SenderKind": {"type": "string", "enum": ["customer", "agent", "system"],
                   "description": "system: Parley itself (the away reply)"},
    "Sender": closed(
        ["kind", "id", "name"],
        kind=ref("SenderKind"),
        id={"type": "string", "description": "the customer's UUID, or the agent's user id"},
        name={"type": "string", "description": "a customer's current name in the directory; an agent's current "
              "name (their profile's display name, never their login)"},
    ),
    "AttachmentContentType": {"type": "string", "enum": ATTACHMENT_TYPES, "description": "read from the bytes at upload"},
    "Attachment": closed(
        ["attachment_id", "name", "content_type", "size", "url", "thumbnail_url"],
        attachment_id=UUID,
        name={"type": "string", "description": "the uploader's file name (show it as text)"},
        content_type=ref("AttachmentContentType"),
        size={"type": "integer", "minimum": 1, "description": "bytes"},
        url={"type": "string", "description": "where the conversation's customer and agents download it "
             "(relative to this server; a cookie or bearer token authenticates)"},
        thumbnail_url={**nullable({"type": "string"}), "description": "an image's thumbnail (at most 320×320); "
                       "null for other files"},
    ),
    "AttachmentUpload": {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary",
                                "description": "the file; its name is kept for display, its declared type is ignored"}},
    },
    "UploadedAttachment": closed(
        ["attachment_id", "name", "content_type", "size"],
        attachment_id={**UUID, "description": "name it in a send's `attachments` within 24 hours"},
        name={"type": "string"}, content_type=ref("AttachmentContentType"), size={"type": "integer", "minimum": 1},
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
    "ConversationStatus": {"type": "string", "enum": ["open", "pending", "snoozed", "resolved"],
                           "description": "`snoozed` only through `/snooze`; a customer message reopens any but `open`"},
    "Conversation": closed(
        ["customer_id", "customer_name", "last_message", "unread_for_agents", "awaiting_reply", "last_activity_at",
         "status", "assignee", "snoozed_until", "first_response_due_at", "sla_breached", "labels", "rating",
         "position"],
        customer_id=UUID,
        customer_name={"type": "string"},
        last_message={**nullable(ref("LastMessage")), "description": "null while no message was written"},
        unread_for_agents={"type": "integer", "minimum": 0},
        awaiting_reply={"type": "boolean", "description": "the customer spoke last"},
        last_activity_at=TIME,
        status=ref("ConversationStatus"),
        assignee=nullable(ref("Assignee")),
        snoozed_until={**nullable(TIME), "description": "while snoozed: when it reopens"},
        first_response_due_at={**nullable(TIME),
                               "description": "while the customer waits for a first reply (with a target configured)"},
        sla_breached={"type": "boolean", "description": "the current waiting period passed its first-response target"},
        labels={"type": "array", "items": {"type": "string"}, "description": "sorted, lower case"},
        rating={**nullable(ref("Rating")), "description": "the customer's last rating; null if never rated"},
        marked_unread={"type": "boolean", "description": "the calling agent marked it unread (HTTP answers to "
                       "agents only: frames and webhooks, which every agent or the host application shares, leave "
                       "it out; `conversation.unread` frames announce it)"},
        position=POSITION,
    ),
    "Rating": closed(
        ["score", "comment", "rated_at"], score={"type": "integer", "minimum": 1, "maximum": 5},
        comment={"type": "string", "maxLength": 2000, "description": "plain text; empty when none was given"},
        rated_at=TIME,
    ),
    "RateConversation": {
        "type": "object", "required": ["score"],
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": text(2000, "optional; at most 2000 characters after stripping"),
            "customer_id": {**UUID, "description": "optional: the conversation meant (it must be the caller's own)"},
        },
    },
    "RatingPrompt": closed(
        ["asked", "rating", "position"],
        asked={"type": "boolean", "description": "the conversation is resolved: the customer may rate it"},
        rating={**nullable(ref("Rating")), "description": "the rating of the current resolved period, if any"},
        position=POSITION,
    ),
    **REPORT_PARTS,
    "ReportSummary": closed(
        ["from", "to", "agent", *REPORT_FIGURES, "by_agent"], **REPORT_RANGE, **REPORT_FIGURES,
        by_agent={"type": "array", "items": ref("ReportAgentFigures")},
    ),
    "ReportAgentFigures": closed(["agent", *REPORT_FIGURES], agent=ref("Assignee"), **REPORT_FIGURES),
    "ReportDaily": closed(
        ["from", "to", "agent", "days"], **REPORT_RANGE, days={"type": "array", "items": ref("ReportDay")},
    ),
    "ReportDay": closed(["day", *REPORT_FIGURES], day={"type": "string", "format": "date"}, **REPORT_FIGURES),
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
    "SettableConversationStatus": {"type": "string", "enum": ["open", "pending", "resolved"]},
    "ChangeConversationStatus": {"type": "object", "required": ["status"],
                                 "properties": {"status": ref("SettableConversationStatus")}},
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
    "LabelCount": closed(["label", "conversations"], label={"type": "string"},
                         conversations={"type": "integer", "minimum": 1}),
    "LabelList": closed(["labels"], labels={"type": "array", "items": ref("LabelCount")}),
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
    "CustomerOrigin": {"type": "string", "enum": ["form", "api", "webhook"],
                       "description": "how the customer came: the visitor form, POST /api/v1/customers, an inbound "
                       "webhook"},
    "CustomerProfile": closed(
        ["customer_id", "name", "email", "phone", "external_id", "origin"],
        customer_id=UUID, name={"type": "string"}, email={"type": "string"}, phone={"type": "string"},
        external_id={"type": ["string", "null"]},
        origin={**nullable(ref("CustomerOrigin")), "description": "null when not known"},
    ),
    "ConversationDetail": closed(
        ["conversation", "customer"],
        conversation={**nullable(ref("Conversation")), "description": "null until the customer's first message"},
        customer={**nullable(ref("CustomerProfile")), "description": "null until the directory has the customer"},
    ),
    # -- search
    "SearchResultKind": {"type": "string", "enum": ["message", "customer"],
                         "description": "what matched: a message's text, or a customer's name or email"},
    "SearchResult": closed(
        ["kind", "message", "customer_id", "customer_name", "highlight"],
        kind=ref("SearchResultKind"),
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
            "keys": ref("PushSubscriptionKeys"),
        },
    },
    "PushSubscriptionKeys": {
        "type": "object",
        "required": ["p256dh", "auth"],
        "properties": {"p256dh": text(200), "auth": text(100)},
    },
    "PushSubscriptionId": closed(["subscription_id"], subscription_id=UUID),
    # -- outbound webhooks
    "WebhookEndpointRegistration": {
        "type": "object",
        "required": ["url", "events"],
        "properties": {
            "url": text(2048, "https; must not resolve to loopback, private or link-local addresses"),
            "events": {"type": "array", "minItems": 1, "items": ref("WebhookEventType")},
        },
    },
    "WebhookEventType": {"type": "string", "enum": WEBHOOK_TYPES,
                         "description": "what an endpoint subscribes to (the document's `webhooks` describe each)"},
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
    "ErasedCustomer": closed(
        ["customer_id", "reason"], customer_id=UUID,
        reason=ref("ErasureReason"),
    ),
    "ErasureReason": {"type": "string", "enum": ["request", "retention", "restore"],
                      "description": "`request`: the erase API; `retention`: PARLEY_RETENTION_DAYS of inactivity; "
                      "`restore`: an erasure made again after a restore of an older backup (`reapply_erasures`)"},
    "WebhookCustomer": closed(
        ["customer_id", "name", "email", "phone", "external_id"],
        customer_id=UUID, name={"type": "string"}, email={"type": "string"}, phone={"type": "string"},
        external_id={"type": ["string", "null"], "description": "the host application's id, if it gave one"},
    ),
    "WebhookEndpointList": closed(["endpoints"], endpoints={"type": "array", "items": ref("WebhookEndpoint")}),
    # -- inbound webhooks
    "InboundMessage": {
        "type": "object",
        "required": ["customer", "text"],
        "properties": {
            "event_id": optional_text(200, "the delivery's id, the same on every retry"),
            "customer": ref("InboundCustomer"),
            "text": {"type": "string", "description": f"1 to {MAX_BODY_CHARS} characters after trimming"},
            "sent_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 64,
                        "description": "RFC 3339 with an offset; default: when Parley stores it"},
        },
    },
    "InboundCustomer": {
        "type": "object",
        "required": ["external_id"],
        "properties": {"external_id": text(160), "name": optional_text(200)},
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
        business_hours={**nullable(ref("BusinessHoursNow")),
                        "description": "null when no business hours are configured (`PARLEY_BUSINESS_HOURS`)"},
        reply_time=nullable({"type": "string", "description": "`PARLEY_WIDGET_REPLY_TIME`, for a person"}),
        visitor_signup={"type": "boolean", "description": "visitors the host did not sign in may start a chat"},
        origins={"type": "array", "items": {"type": "string"},
                 "description": "`PARLEY_WIDGET_ORIGINS`: the host sites that may embed the widget"},
    ),
    "BusinessHoursNow": closed(
        ["open", "next_opening", "next_opening_text"],
        open={"type": "boolean", "description": "the team is within its business hours now"},
        next_opening={**nullable(TIME), "description": "now when open; else when the team opens next (null: "
                      "no opening within 400 days)"},
        next_opening_text=nullable({"type": "string", "description": "while closed: the next opening for a person, "
                                    "in the team's time zone (`tomorrow at 09:00 CET`)"}),
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
            "realtime": ref("RealtimeHealth"),
            "consumers": {"type": "object", "additionalProperties": ref("ConsumerHealth")},
        },
    },
    "RealtimeHealth": {"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}}},
    "ConsumerHealth": {
        "type": "object",
        "required": ["position", "lag", "running"],
        "properties": {
            "position": POSITION,
            "lag": {"type": "integer", "minimum": 0},
            "owner": {"type": "string", "description": "the lease holder, `<host>:<pid>:<random>`; "
                      "only with `Authorization: Bearer <PARLEY_METRICS_KEY>`"},
            "lease_until": nullable({"type": "string"}),
            "running": {"type": "boolean"},
            "error": nullable({"type": "object", "description": "the event the group is stuck on: `position`, "
                               "`since`; `event_id`, `member` and `detail` only with "
                               "`Authorization: Bearer <PARLEY_METRICS_KEY>`"}),
            "parked": {"type": "integer", "minimum": 0},
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
