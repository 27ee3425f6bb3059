"""The Attachments section of the contract: upload, send, download, expiry,
and a message's attachments in every representation of it."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from PIL import Image

from attachments import expiry
from attachments.models import Attachment
from attachments.services import EXTENSIONS
from eventstore.events import Cursor, encode
from eventstore.models import StoredEvent
from eventstore.store import EventStore
from notifications.models import PushDelivery
from outbound.models import WebhookDelivery
from realtime.frames import envelopes
from tests.conftest import new_id
from tests.integration.test_push_support import make_worker, push, run_pipeline, subscribe, vapid_keys  # noqa: F401
from tests.integration.webhook_support import receiver, register  # noqa: F401
from tests.support import files
from workers import timers
from workers.models import Timer

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD = "/api/v1/attachments"


def upload(caller: Any, name: str, data: bytes, declared: str = "application/octet-stream") -> Any:
    """POST a file as a browser's FormData would, with whatever type the client claims."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {caller.token}"}
    return caller.client.post(UPLOAD, {"file": SimpleUploadedFile(name, data, content_type=declared)}, **headers)


def uploaded(caller: Any, name: str = "photo.png", data: bytes | None = None) -> str:
    r = upload(caller, name, data if data is not None else files.png())
    assert r.status_code == 201, r.content
    return r.json()["attachment_id"]


def send(caller: Any, *, path: str = "/api/v1/messages", **body: Any) -> Any:
    return caller.post(path, {"message_id": body.pop("message_id", new_id()), **body})


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def get(caller: Any, url: str) -> Any:
    return caller.client.get(url, HTTP_AUTHORIZATION=f"Bearer {caller.token}")


def content(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def count(event_type: str) -> int:
    return StoredEvent.objects.filter(event_type=event_type).count()


# -- upload: the type comes from the bytes ------------------------------------------------


@pytest.mark.parametrize("expected", sorted(files.ALLOWED))
def test_each_accepted_type_is_sniffed_from_the_bytes_whatever_the_client_declares(customer, expected):
    data = files.ALLOWED[expected]()
    r = upload(customer, "innocent.exe", data, declared="application/x-msdownload")
    assert r.status_code == 201, r.content
    body = r.json()
    extension = EXTENSIONS[expected][0]  # the name follows the type read from the bytes
    assert body == {"attachment_id": body["attachment_id"], "name": f"innocent.{extension}", "content_type": expected,
                    "size": len(data)}
    assert Attachment.objects.get(id=body["attachment_id"]).content_type == expected


@pytest.mark.parametrize(("name", "data"), [
    ("page.png", files.HTML), ("drawing.svg", files.SVG), ("setup.exe", files.EXE), ("archive.zip", files.zip_file()),
    ("empty.txt", b""), ("binary.txt", b"abc\x00def"),
])
def test_anything_else_is_415_and_nothing_is_stored(customer, _private_media, name, data):
    r = upload(customer, name, data, declared="image/png")
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "attachment_type_not_allowed"
    assert Attachment.objects.count() == 0 and Timer.objects.count() == 0
    assert stored_files(_private_media) == []


def test_a_file_over_the_cap_is_413_while_it_streams_and_nothing_is_stored(customer, settings, _private_media):
    settings.PARLEY_MAX_ATTACHMENT_BYTES = 1000
    r = upload(customer, "big.txt", b"a" * 1001)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "attachment_too_large"
    assert upload(customer, "fits.txt", b"a" * 1000).status_code == 201
    assert Attachment.objects.count() == 1 and len(stored_files(_private_media)) == 1


def test_a_body_declared_far_over_the_cap_is_refused_before_it_is_read(customer, settings, _private_media):
    settings.PARLEY_MAX_ATTACHMENT_BYTES = 1000
    r = upload(customer, "big.png", files.png((800, 800)) + b"\0" * 70_000)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "attachment_too_large"
    assert Attachment.objects.count() == 0 and stored_files(_private_media) == []


def test_oversized_form_fields_beside_the_file_are_413_in_the_error_shape(customer):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {customer.token}"}
    r = customer.client.post(UPLOAD, {"note": "x" * 70_000, "file": SimpleUploadedFile("a.txt", b"hi")}, **headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_uploads_past_the_budget_are_429_and_store_nothing(make_customer, agent, settings, _private_media):
    settings.PARLEY_CUSTOMER_UPLOADS_PER_MINUTE = 2
    ada, bea = make_customer("Ada"), make_customer("Bea")
    assert [upload(ada, f"{i}.txt", b"hello").status_code for i in range(2)] == [201, 201]
    r = upload(ada, "third.txt", b"hello")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r["Retry-After"]) <= 60
    assert Attachment.objects.count() == 2 and len(stored_files(_private_media)) == 2
    assert upload(bea, "hers.txt", b"hello").status_code == 201  # a budget per identity
    assert upload(agent, "agents.txt", b"hello").status_code == 201  # agents have their own


def test_an_upload_needs_the_multipart_file_field(customer):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {customer.token}"}
    assert customer.client.post(UPLOAD, {"other": "x"}, **headers).json()["error"]["code"] == "missing_file"
    r = customer.post(UPLOAD, {"file": "x"})
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")


def test_a_malformed_multipart_body_is_400_in_the_error_shape(customer, client):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {customer.token}"}
    for content_type in ("multipart/form-data; boundary=", "multipart/form-data"):
        r = customer.client.post(UPLOAD, b"--x\r\ngarbage", content_type=content_type, **headers)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_multipart"), r.content
    # The chat page's cookie reaches the same parse through the CSRF check.
    client.get(f"/chat/?token={customer.token}")
    r = client.post(UPLOAD, b"--x\r\ngarbage", content_type="multipart/form-data; boundary=")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_multipart"), r.content


def test_a_decompression_bomb_is_refused(customer, _private_media):
    bomb = files.image("PNG", (10_000, 5_000))  # 50 megapixels of one colour: a small file
    assert len(bomb) < 1024 * 1024
    r = upload(customer, "bomb.png", bomb)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "image_too_large")
    assert stored_files(_private_media) == []


def test_the_name_shown_is_the_last_path_segment_without_control_characters(customer):
    r = upload(customer, "..\\..\\evil\u202egnp.exe", files.TEXT)
    assert r.json()["name"] == "evilgnp.txt"  # and its extension follows the sniffed type


def test_a_text_file_named_html_is_named_and_saved_as_txt(customer):
    r = upload(customer, "invoice.html", files.TEXT)
    assert (r.status_code, r.json()["name"], r.json()["content_type"]) == (201, "invoice.txt", "text/plain")
    shown = send(customer, attachments=[r.json()["attachment_id"]]).json()["message"]["attachments"][0]
    assert shown["name"] == "invoice.txt"
    download = get(customer, shown["url"])
    assert download["Content-Disposition"] == "attachment; filename=\"invoice.txt\"; filename*=UTF-8''invoice.txt"


def test_an_exif_rotated_jpeg_gets_an_upright_thumbnail_without_exif(customer, agent):
    attachment_id = uploaded(customer, "camera.jpg", files.jpeg_rotated())
    message = send(customer, attachments=[attachment_id]).json()["message"]
    shown = message["attachments"][0]
    assert shown["content_type"] == "image/jpeg"
    r = get(agent, shown["thumbnail_url"])
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(content(r)))
    assert thumb.size == (20, 40)  # stored 40×20, shown turned a quarter: portrait
    assert len(thumb.getexif()) == 0 and "exif" not in thumb.info
    original = Image.open(io.BytesIO(content(get(agent, shown["url"]))))
    assert original.size == (40, 20)  # the original is the uploaded file, byte for byte


# -- sending -----------------------------------------------------------------------------


def test_a_message_may_be_attachments_alone(customer, project):
    photo, pdf = uploaded(customer), uploaded(customer, "invoice.pdf", files.PDF)
    r = send(customer, attachments=[photo, pdf])
    assert r.status_code == 201, r.content
    message = r.json()["message"]
    assert message["body"] == ""
    assert message["attachments"] == [
        {"attachment_id": photo, "name": "photo.png", "content_type": "image/png", "size": len(files.png()),
         "url": f"/api/v1/attachments/{photo}/content", "thumbnail_url": f"/api/v1/attachments/{photo}/thumbnail"},
        {"attachment_id": pdf, "name": "invoice.pdf", "content_type": "application/pdf", "size": len(files.PDF),
         "url": f"/api/v1/attachments/{pdf}/content", "thumbnail_url": None},
    ]
    assert send(customer, body="", attachments=[uploaded(customer)]).status_code == 201
    empty = send(customer, body="  ")
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "invalid_body")
    project()
    listed = customer.get("/api/v1/messages", after=0).json()["messages"]
    assert listed[0]["attachments"] == message["attachments"]


def test_an_agent_sends_files_to_a_customer_and_the_conversation_list_shows_them(customer, agent, project):
    photo = uploaded(agent, "label.png")
    r = send(agent, path=f"/api/v1/conversations/{customer.id}/messages", attachments=[photo])
    assert r.status_code == 201, r.content
    project()
    conv = agent.get("/api/v1/conversations").json()["conversations"][0]
    assert conv["last_message"]["preview"] == "\N{PAPERCLIP} label.png"
    thread = agent.get(f"/api/v1/conversations/{customer.id}/messages").json()["messages"]
    assert thread[0]["attachments"] == r.json()["message"]["attachments"]


def test_a_retried_send_with_the_same_attachments_doubles_nothing(customer):
    photo = uploaded(customer)
    mid = new_id()
    first = send(customer, message_id=mid, body="see", attachments=[photo])
    again = send(customer, message_id=mid, body="see", attachments=[photo])
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["message"] == first.json()["message"]
    assert count("MessageSent") == 1
    assert str(Attachment.objects.get(id=photo).message_id) == mid


def test_the_same_message_id_with_other_attachments_is_a_conflict_that_leaves_them_unsent(customer):
    photo, other = uploaded(customer), uploaded(customer, "other.png")
    mid = new_id()
    send(customer, message_id=mid, body="see", attachments=[photo])
    r = send(customer, message_id=mid, body="see", attachments=[photo, other])
    assert (r.status_code, r.json()["error"]["code"]) == (409, "message_id_conflict")
    assert Attachment.objects.get(id=other).message_id is None
    assert send(customer, attachments=[other]).status_code == 201


def test_an_attachment_belongs_to_exactly_one_message(customer):
    photo = uploaded(customer)
    assert send(customer, attachments=[photo]).status_code == 201
    r = send(customer, body="again", attachments=[photo])
    assert (r.status_code, r.json()["error"]["code"]) == (409, "attachment_already_sent")
    assert count("MessageSent") == 1


def test_bad_attachment_lists_are_refused_with_clear_codes_and_nothing_is_stored(make_customer, agent):
    ada, bob = make_customer(), make_customer("Bob", "bob@example.com")
    mine, bobs, agents = uploaded(ada), uploaded(bob), uploaded(agent)
    cases = [
        ([new_id()], 400, "unknown_attachment"),
        ([bobs], 400, "unknown_attachment"),  # someone else's: told no more than "unknown"
        ([agents], 400, "unknown_attachment"),
        ([mine, mine], 400, "duplicate_attachment"),
        ([mine] + [new_id() for _ in range(10)], 400, "too_many_attachments"),
        (["not-a-uuid"], 400, "invalid_field"),
        ("x", 400, "invalid_field"),
    ]
    for ids, status, code in cases:
        r = send(ada, body="hi", attachments=ids)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), ids
    assert count("MessageSent") == 0
    assert Attachment.objects.filter(message_id__isnull=False).count() == 0


def test_an_agent_cannot_send_a_customers_upload(customer, agent):
    r = send(agent, path=f"/api/v1/conversations/{customer.id}/messages", attachments=[uploaded(customer)])
    assert (r.status_code, r.json()["error"]["code"]) == (400, "unknown_attachment")


# -- downloads -------------------------------------------------------------------------------


def test_downloads_answer_the_conversations_customer_and_agents_and_404_anyone_else(make_customer, make_agent):
    ada, bob = make_customer(), make_customer("Bob", "bob@example.com")
    grace, linus = make_agent("grace"), make_agent("linus")
    shown = send(ada, attachments=[uploaded(ada)]).json()["message"]["attachments"][0]
    for url in (shown["url"], shown["thumbnail_url"]):
        assert get(ada, url).status_code == 200
        assert get(grace, url).status_code == 200
        assert get(linus, url).status_code == 200
        for refused in (get(bob, url), ada.client.get(url), ada.client.get(url, HTTP_AUTHORIZATION="Bearer forged")):
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "not_found"
    assert get(ada, f"/api/v1/attachments/{new_id()}/content").status_code == 404
    assert get(ada, "/api/v1/attachments/nope/content").status_code == 404


def test_an_unsent_upload_is_its_uploaders_only(customer, agent):
    attachment_id = uploaded(customer)
    assert get(customer, f"/api/v1/attachments/{attachment_id}/content").status_code == 200
    assert get(agent, f"/api/v1/attachments/{attachment_id}/content").status_code == 404


def test_the_customer_page_cookie_loads_an_attachment(customer, client):
    from accounts.principals import CUSTOMER_COOKIE

    shown = send(customer, attachments=[uploaded(customer)]).json()["message"]["attachments"][0]
    r = client.get(f"/chat/?token={customer.token}")
    assert CUSTOMER_COOKIE in r.cookies
    assert client.get(shown["url"]).status_code == 200


@pytest.mark.parametrize(("name", "data", "served", "disposition"), [
    ("photo.png", files.png(), "image/png", "inline"),
    ("invoice.pdf", files.PDF, "application/pdf", "attachment"),
    ("notes.txt", files.TEXT, "text/plain; charset=utf-8", "attachment"),
])
def test_downloads_carry_their_sniffed_type_nosniff_a_sandbox_and_a_safe_disposition(
    customer, name, data, served, disposition,
):
    shown = send(customer, attachments=[uploaded(customer, name, data)]).json()["message"]["attachments"][0]
    r = get(customer, shown["url"])
    assert r.status_code == 200
    assert content(r) == data
    assert r["Content-Type"] == served
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert r["Content-Disposition"] == f"{disposition}; filename=\"{name}\"; filename*=UTF-8''{name}"


def test_a_non_ascii_name_is_given_as_rfc_6266_filename_star(customer):
    shown = send(customer, attachments=[uploaded(customer, 'Rechnung "März";.txt', files.TEXT)]).json()["message"]
    r = get(customer, shown["attachments"][0]["url"])
    assert r["Content-Disposition"] == (
        "attachment; filename=\"Rechnung _M_rz__.txt\"; filename*=UTF-8''Rechnung%20%22M%C3%A4rz%22%3B.txt")


# -- unsent attachments expire -----------------------------------------------------------


def test_an_unsent_attachment_is_deleted_a_day_after_its_upload(customer, _private_media):
    attachment_id = uploaded(customer)
    uploaded_at = Attachment.objects.get(id=attachment_id).uploaded_at
    assert len(stored_files(_private_media)) == 2  # the file and its thumbnail
    assert timers.fire_due(now=uploaded_at + dt.timedelta(hours=23, minutes=59)) == 0
    assert Attachment.objects.filter(id=attachment_id).exists()
    assert timers.fire_due(now=uploaded_at + expiry.UNSENT_LIFETIME) == 1
    assert not Attachment.objects.filter(id=attachment_id).exists()
    assert stored_files(_private_media) == []
    r = send(customer, attachments=[attachment_id])
    assert (r.status_code, r.json()["error"]["code"]) == (400, "unknown_attachment")


def test_a_sent_attachment_is_never_deleted_by_its_timer(customer, _private_media):
    attachment_id = uploaded(customer)
    row = Attachment.objects.get(id=attachment_id)
    send(customer, attachments=[attachment_id])
    assert timers.fire_due(now=row.uploaded_at + dt.timedelta(days=2)) == 0  # the send cancelled it
    # And should the timer fire anyway (it was claimed before the send committed), it re-checks.
    due = timers.Due(f"{expiry.KIND}:{row.id}", expiry.KIND, expiry.subject(row.id), row.uploaded_at,
                     {"attachment_id": str(row.id)})
    with transaction.atomic():
        expiry.expire(due, row.uploaded_at + dt.timedelta(days=2))
    assert Attachment.objects.filter(id=attachment_id).exists()
    assert len(stored_files(_private_media)) == 2
    assert get(customer, f"/api/v1/attachments/{attachment_id}/content").status_code == 200


# -- every representation of a message carries its attachments -------------------------


def test_frames_and_resume_frames_carry_the_attachments(customer, project):
    message = send(customer, body="see", attachments=[uploaded(customer)]).json()["message"]
    project()
    log = EventStore().read_all(Cursor.start(), limit=1000)
    frames = [json.loads(f) for env in envelopes(log) for f in env.to_customer + env.to_agents]
    sent = [f for f in frames if f["type"] == "message.sent"]
    assert sent and all(f["message"]["attachments"] == message["attachments"] for f in sent)


def test_the_push_preview_of_a_message_of_attachments_alone_names_the_file(push, vapid_keys, customer, agent):  # noqa: F811
    device = subscribe(push, customer, vapid_keys)
    photo = uploaded(agent, "photo.png")
    assert send(agent, path=f"/api/v1/conversations/{customer.id}/messages", attachments=[photo]).status_code == 201
    run_pipeline()
    (delivery,) = PushDelivery.objects.all()
    assert delivery.message["preview"] == "\N{PAPERCLIP} photo.png"
    make_worker().drain()  # the worker refreshes the preview from the log when it sends: still the files
    (payload,) = device.payloads()
    assert payload["message"]["preview"] == "\N{PAPERCLIP} photo.png"


def test_the_webhook_data_of_a_message_is_the_api_object_with_its_attachments(receiver, client, customer, project):  # noqa: F811
    register(client, receiver, ["message.created"])
    message = send(customer, attachments=[uploaded(customer)]).json()["message"]
    project()
    (delivery,) = WebhookDelivery.objects.all()
    data = json.loads(delivery.body)["data"]
    assert data["attachments"] == message["attachments"]
    assert data["message_id"] == message["message_id"]


def test_a_message_sent_before_attachments_existed_reads_back_with_none(customer, project):
    send(customer, body="old")
    stored = StoredEvent.objects.get(event_type="MessageSent")
    (written,) = [r for r in EventStore().read_all(Cursor.start(), limit=100) if r.event_type == "MessageSent"]
    payload = encode(written.event)  # in clear, as every event written before sealing
    payload.pop("attachments")  # as every MessageSent written before this field
    StoredEvent.objects.filter(pk=stored.pk).update(data=json.dumps(payload))
    (recorded,) = [r for r in EventStore().read_all(Cursor.start(), limit=100) if r.event_type == "MessageSent"]
    assert recorded.event.attachments == ()  # type: ignore[attr-defined]
    project()
    assert customer.get("/api/v1/messages", after=0).json()["messages"][0]["attachments"] == []


def test_the_attachment_ids_in_the_log_are_the_uploads(customer):
    photo = uploaded(customer)
    send(customer, attachments=[photo])
    (recorded,) = [r for r in EventStore().read_all(Cursor.start(), limit=100) if r.event_type == "MessageSent"]
    (ref,) = recorded.event.attachments  # type: ignore[attr-defined]
    assert (ref.attachment_id, ref.name, ref.content_type, ref.has_thumbnail) == (uuid.UUID(photo), "photo.png",
                                                                                  "image/png", True)
