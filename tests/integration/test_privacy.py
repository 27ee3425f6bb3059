"""The Privacy section of the contract: erasure by crypto-shredding, export.

An erased customer's words, name, email and files are in no read model, no
queue, no dump of the database and no file of the media folder; the log
keeps its events, which read back as Erased; a rebuild brings nothing back.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections

from eventstore import keys
from eventstore.events import Cursor, Erased
from eventstore.models import StoredEvent, SubjectKey
from eventstore.store import EventStore
from notifications.models import PushSubscription
from outbound.models import WebhookDelivery
from project.bootstrap import catch_up
from readmodels import rebuild
from readmodels.projections import read_models
from tests.conftest import new_id
from tests.integration.test_push_support import push, subscribe, vapid_keys  # noqa: F401
from tests.integration.webhook_support import KEY, integration, receiver, register  # noqa: F401
from tests.support import files

pytestmark = pytest.mark.django_db(transaction=True)

#: Words only the erased customer's conversation holds.
SECRET = "zanzibar-octopus"
AGENT_SECRET = "quetzalcoatl-refund"
NOTE_SECRET = "aubergine-passport"
RATING_SECRET = "marmalade-grievance"
NAME, EMAIL = "Hortensia Vandermeer", "hortensia@secret.example"
PHONE, EXTERNAL_ID = "+44 20 7946 0958", "crm-hortensia-77"


def dump() -> str:
    """Every row of the database, as a dump of it would hold them."""
    if connection.vendor == "postgresql":
        s = connection.settings_dict
        env = {"PGPASSWORD": s.get("PASSWORD") or ""}
        done = subprocess.run(
            ["pg_dump", "-h", s.get("HOST") or "127.0.0.1", "-p", str(s.get("PORT") or 5432), "-U", s["USER"],
             "--data-only", s["NAME"]],
            capture_output=True, text=True, check=True, env={**env, "PATH": "/usr/bin:/bin"},
        )
        return done.stdout
    return "\n".join(connection.connection.iterdump())


def media_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def upload(caller: Any, name: str, data: bytes) -> str:
    r = caller.client.post("/api/v1/attachments", {"file": SimpleUploadedFile(name, data)},
                           HTTP_AUTHORIZATION=f"Bearer {caller.token}")
    assert r.status_code == 201, r.content
    return str(r.json()["attachment_id"])


def erase(client: Any, customer_id: str) -> Any:
    return integration(client, "post", f"/api/v1/customers/{customer_id}/erase")


@pytest.fixture
def conversation(make_customer: Any, agent: Any, settings: Any) -> Any:
    """A customer with everything Parley can hold about them: contact details, messages both
    ways, an edit, a read, a file, a note and a rating with a comment."""
    from customers.services import customer_update
    from tests.integration.test_agent_tools import settle

    settings.PARLEY_INTEGRATION_KEY = KEY
    customer = make_customer(name=NAME, email=EMAIL, external_id=EXTERNAL_ID)
    customer_update(customer_id=uuid.UUID(customer.id), phone=PHONE)
    # A window the website widget signed in (its session names the customer).
    from accounts.popouts import popout_open

    popout_open(customer_id=uuid.UUID(customer.id))
    picture = files.png((7, 5))
    attachment = upload(customer, "passport-scan.png", picture)
    first = new_id()
    assert customer.post("/api/v1/messages", {"message_id": first, "body": f"my code is {SECRET}",
                                              "attachments": [attachment]}).status_code == 201
    assert customer.client.patch(f"/api/v1/messages/{first}", f'{{"body": "my code is {SECRET}, sorry"}}',
                                 content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {customer.token}").status_code == 200
    reply = new_id()
    assert agent.post(f"/api/v1/conversations/{customer.id}/messages",
                      {"message_id": reply, "body": f"your {AGENT_SECRET} is on its way"}).status_code == 201
    assert customer.post(f"/api/v1/messages/{reply}/read").status_code in (200, 204)
    assert agent.post(f"/api/v1/conversations/{customer.id}/notes",
                      {"note_id": new_id(), "body": f"VIP: {NOTE_SECRET}"}).status_code == 201
    settle()
    assert agent.post(f"/api/v1/conversations/{customer.id}/status", {"status": "resolved"}).status_code == 200
    assert customer.post("/api/v1/rating", {"score": 2, "comment": f"slow, {RATING_SECRET}"}).status_code == 201
    customer.picture, customer.attachment = picture, attachment
    return customer


def erase_while(client: Any, customer: Any, request: Any, *, requests: int, threads: int = 4) -> tuple[Any, list[int]]:
    """Erase ``customer`` while ``threads`` threads (each with its own client and connection) make
    calls of ``request(client, thread, i)``, all let go at once: each makes ``requests`` calls, and
    more until one of its calls began after the erasure had answered (so some calls race it and
    some come after it, however the threads are scheduled); the erasure's answer and every
    call's status."""
    from django.test import Client

    statuses: list[int] = []
    start = threading.Barrier(threads + 1)
    erased = threading.Event()

    def run(n: int) -> None:
        c = Client()
        try:
            start.wait()
            i, after = 0, False
            while i < requests or not after:
                after = erased.is_set()
                statuses.append(request(c, n, i))
                i += 1
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    start.wait()
    try:
        r = erase(client, customer.id)
    finally:
        erased.set()
    for t in workers:
        t.join()
    return r, statuses


def secrets_in(text: str) -> list[str]:
    words = (SECRET, AGENT_SECRET, NOTE_SECRET, RATING_SECRET, NAME, EMAIL, PHONE, EXTERNAL_ID, "passport-scan")
    return [s for s in words if s in text]


def files_of(root: Path, attachment_id: str) -> list[str]:
    """The files of the media folder named by an attachment: its bytes and its thumbnail."""
    return sorted(p.name for p in root.rglob("*") if p.is_file() and attachment_id in p.name)


def rows_naming(customer_id: str) -> dict[str, list[Any]]:
    """Every row of a model with a ``customer_id`` column that names the customer, by table."""
    from django.apps import apps

    found: dict[str, list[Any]] = {}
    for model in apps.get_models():
        if "customer_id" in {f.attname for f in model._meta.concrete_fields}:
            rows = list(model._default_manager.filter(customer_id=customer_id))
            if rows:
                found[model._meta.db_table] = rows
    return found


def kept_after_erasure(customer_id: str) -> None:
    """Nothing names an erased customer any more but what docs/privacy.md keeps on purpose:
    the ``customer.erased`` webhook that tells the host application; their timers, finished
    (cancelled, or fired before the erasure); the log's events and their key's row, emptied.
    None of these holds anything of theirs but their id."""
    from workers.models import Timer

    left = rows_naming(customer_id)
    assert {table: [getattr(row, "event_type", None) for row in rows] for table, rows in left.items()} in (
        {}, {"parley_webhook_deliveries": ["customer.erased"]}), left
    assert not Timer.objects.filter(subject=customer_id, state=Timer.PENDING).exists()
    assert SubjectKey.objects.get(subject=customer_id).wrapped == ""


def test_the_log_holds_no_personal_data_in_clear(conversation, project):
    project()
    stored = "\n".join(StoredEvent.objects.values_list("data", flat=True))
    assert secrets_in(stored) == []
    # ...and yet everything reads back plain
    bodies = [r.event.body for r in EventStore().read_all(Cursor.start()) if r.event_type == "MessageSent"]
    assert f"my code is {SECRET}" in bodies


def test_after_erasure_no_dump_and_no_file_holds_anything_of_the_customer(
    conversation, agent, client, project, _private_media, receiver, vapid_keys, push, settings,  # noqa: F811
):
    from notifications.models import EmailOutbox, PushDelivery
    from tests.support.mailflow import later
    from workers import timers

    settings.PARLEY_EMAIL_FALLBACK_SECONDS = 600
    register(client, receiver, ["message.created", "message.edited", "customer.updated", "customer.erased"])
    subscribe(push, conversation, vapid_keys)
    assert conversation.post("/api/v1/messages", {"message_id": new_id(), "body": f"again {SECRET}"}).status_code == 201
    assert agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                      {"message_id": new_id(), "body": f"{AGENT_SECRET} again"}).status_code == 201
    project()
    timers.fire_due(now=later())  # the unread streak's email is queued; no worker sends it
    assert PushDelivery.objects.filter(customer_id=conversation.id, state="pending").exists()
    assert EmailOutbox.objects.filter(customer_id=conversation.id, state=EmailOutbox.PENDING).exists()
    assert set(secrets_in(dump())) == {SECRET, AGENT_SECRET, NOTE_SECRET, RATING_SECRET, NAME, EMAIL, PHONE,
                                       EXTERNAL_ID, "passport-scan"}  # in clear before
    assert conversation.picture in media_bytes(_private_media)
    assert files_of(_private_media, conversation.attachment) == [conversation.attachment,
                                                                 f"{conversation.attachment}.thumb"]

    r = erase(client, conversation.id)
    assert r.status_code == 202, r.content
    assert r.json() == {"customer_id": conversation.id, "erased": True}
    project()
    catch_up("workflow")  # which routes conversations to agents

    assert secrets_in(dump()) == []
    assert conversation.picture not in media_bytes(_private_media)
    assert files_of(_private_media, conversation.attachment) == []
    assert not PushSubscription.objects.filter(customer_id=conversation.id).exists()
    assert not PushDelivery.objects.filter(customer_id=conversation.id).exists()
    assert not EmailOutbox.objects.filter(customer_id=conversation.id).exists()
    left = list(WebhookDelivery.objects.filter(customer_id=conversation.id).values_list("event_type", flat=True))
    assert left == ["customer.erased"]
    kept_after_erasure(conversation.id)
    assert StoredEvent.objects.filter(event_type="MessageSent").count() == 4  # the log keeps its events


def test_after_erasure_every_read_forgets_the_customer(conversation, agent, client, project):
    project()
    assert erase(client, conversation.id).status_code == 202
    project()
    assert agent.get(f"/api/v1/conversations/{conversation.id}").status_code == 404
    listed = agent.get("/api/v1/conversations").json()
    assert conversation.id not in str(listed)
    for words in (SECRET, AGENT_SECRET, "Hortensia"):
        found = agent.get("/api/v1/search", q=words)
        assert found.status_code == 200 and secrets_in(str(found.json())) == [], found.json()
    assert integration(client, "get", f"/api/v1/customers/{conversation.id}/export").status_code == 404
    assert integration(client, "get", f"/api/v1/customers/{conversation.id}").status_code == 404
    # the customer's own token: nothing to read, nothing to write
    assert secrets_in(str(conversation.get("/api/v1/messages").content)) == []
    r = conversation.post("/api/v1/messages", {"message_id": new_id(), "body": "still here?"})
    assert r.status_code == 410 and r.json()["error"]["code"] == "erased"


def test_a_rebuild_after_erasure_brings_nothing_back(conversation, client, project):
    project()
    assert erase(client, conversation.id).status_code == 202
    project()
    rebuild.rebuild(read_models())
    assert secrets_in(dump()) == []
    events = [r for r in EventStore()._records(EventStore()._fetch(
        "SELECT position, tx, event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at, "
        "COALESCE(shard, 0) FROM parley_events ORDER BY position", []))]
    mine = [r for r in events if isinstance(r.event, Erased)]
    assert mine and {r.event.subject for r in mine} == {conversation.id}


def test_a_second_erase_changes_nothing(conversation, client, project):
    assert erase(client, conversation.id).status_code == 202
    project()
    count = StoredEvent.objects.count()
    r = erase(client, conversation.id)
    assert r.status_code == 202 and r.json()["erased"] is False
    assert StoredEvent.objects.count() == count


def test_other_customers_are_untouched(conversation, make_customer, agent, client, project):
    other = make_customer(name="Other Person", email="other@example.com")
    assert other.post("/api/v1/messages", {"message_id": new_id(), "body": "other words stay"}).status_code == 201
    project()
    assert erase(client, conversation.id).status_code == 202
    project()
    rebuild.rebuild(read_models())
    shown = agent.get(f"/api/v1/conversations/{other.id}/messages").json()
    assert "other words stay" in str(shown)
    assert "Other Person" in dump()
    assert other.post("/api/v1/messages", {"message_id": new_id(), "body": "and more"}).status_code == 201


def test_erasing_nobody_is_not_found_and_bad_ids_are_refused(client, settings, agent, customer):
    settings.PARLEY_INTEGRATION_KEY = KEY
    assert erase(client, str(uuid.uuid4())).status_code == 404
    assert erase(client, "not-a-uuid").status_code == 400
    assert client.post(f"/api/v1/customers/{customer.id}/erase").status_code == 401
    assert customer.post(f"/api/v1/customers/{customer.id}/erase").status_code == 403
    assert not SubjectKey.objects.filter(erased_at__isnull=False).exists()


def test_a_staff_agent_may_erase(customer, agent, project):
    r = agent.post(f"/api/v1/customers/{customer.id}/erase")
    assert r.status_code == 202 and r.json()["erased"] is True


def test_export_holds_contact_messages_edits_reads_notes_and_attachments(conversation, client, project):
    project()
    assert integration(client, "get", f"/api/v1/customers/{conversation.id}").json()["name"] == NAME
    r = integration(client, "get", f"/api/v1/customers/{conversation.id}/export")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["contact"]["name"] == NAME and data["contact"]["email"] == EMAIL
    assert (data["contact"]["phone"], data["contact"]["external_id"]) == (PHONE, EXTERNAL_ID)
    first, reply = data["messages"]
    assert first["original_body"] == f"my code is {SECRET}"  # as first sent, before the edit
    assert first["body"] == f"my code is {SECRET}, sorry"
    assert [e["body"] for e in first["edits"]] == [f"my code is {SECRET}, sorry"]
    assert reply["original_body"] == reply["body"] and reply["edits"] == []
    assert first["attachments"][0]["name"] == "passport-scan.png"
    assert first["attachments"][0]["url"].startswith("/api/v1/attachments/")
    assert reply["reads"] and reply["reads"][0]["reader_kind"] == "customer"
    assert NOTE_SECRET in data["notes"][0]["body"]
    assert [(r["resolution"], r["score"], r["comment"]) for r in data["ratings"]] == [(1, 2, f"slow, {RATING_SECRET}")]
    assert client.get(f"/api/v1/customers/{conversation.id}/export").status_code == 401


def test_the_exports_links_download_with_the_integration_key_that_asked_for_it(conversation, client, settings):
    (link,) = integration(client, "get", f"/api/v1/customers/{conversation.id}/export").json()["messages"][0]["attachments"]
    for url, content_type in ((link["url"], "image/png"), (link["thumbnail_url"], "image/png")):
        r = integration(client, "get", url)
        assert r.status_code == 200, r.content
        assert r["Content-Type"] == content_type
    assert b"".join(integration(client, "get", link["url"]).streaming_content) == conversation.picture
    assert client.get(link["url"], HTTP_AUTHORIZATION="Bearer not-the-key").status_code == 404
    assert client.get(link["url"]).status_code == 404
    settings.PARLEY_INTEGRATION_KEY = ""  # the host API disabled: an empty bearer is nobody
    assert client.get(link["url"], HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_an_unsent_upload_is_not_the_integration_keys_to_download(customer, client, settings, _private_media):
    settings.PARLEY_INTEGRATION_KEY = KEY
    attachment = upload(customer, "draft.png", files.png((4, 4)))
    assert integration(client, "get", f"/api/v1/attachments/{attachment}").status_code == 404


def test_master_key_rotation_keeps_every_event_readable(conversation, settings):
    old = settings.PARLEY_KEYS
    settings.PARLEY_KEYS = f"k9:{keys.new_master_key()},{old}"
    assert keys.rotate() >= 1
    settings.PARLEY_KEYS = settings.PARLEY_KEYS.split(",")[0]  # the old master key is gone
    keys._ciphers.clear()
    bodies = [r.event.body for r in EventStore().read_all(Cursor.start()) if r.event_type == "MessageSent"]
    assert f"my code is {SECRET}" in bodies
    assert keys.counts() == {"k9": SubjectKey.objects.count()}


@pytest.mark.postgres
def test_erase_racing_the_customers_own_sends_leaves_nothing_of_theirs(make_customer, client, settings, project):
    settings.PARLEY_INTEGRATION_KEY = KEY
    settings.PARLEY_CUSTOMER_SENDS_PER_MINUTE = 10_000
    customer = make_customer(name=NAME, email=EMAIL)

    def send(c: Any, n: int, i: int) -> int:
        return c.post("/api/v1/messages", {"message_id": new_id(), "body": f"{SECRET} {n}.{i}"},
                      content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {customer.token}").status_code

    r, statuses = erase_while(client, customer, send, requests=15)
    assert r.status_code == 202
    assert set(statuses) <= {201, 410}, statuses
    assert 410 in statuses  # some sends came after the erasure...
    project()
    assert secrets_in(dump()) == []
    assert erase(client, customer.id).json()["erased"] is False


def test_retention_erases_conversations_inactive_for_the_period_and_the_dry_run_only_lists(
    conversation, make_customer, project, settings,
):
    from django.core.management import call_command

    from project.privacy import RETENTION_TIMER, schedule_retention
    from readmodels.models import Conversation
    from workers import timers

    recent = make_customer(name="Recent Person", email="recent@example.com")
    assert recent.post("/api/v1/messages", {"message_id": new_id(), "body": "fresh words"}).status_code == 201
    project()
    now = dt.datetime.now(dt.timezone.utc)
    Conversation.objects.filter(customer_id=conversation.id).update(last_activity_at=now - dt.timedelta(days=40))
    settings.PARLEY_RETENTION_DAYS = 30

    out = io.StringIO()
    call_command("erase_inactive", "--dry-run", stdout=out)
    assert f"would erase {conversation.id}" in out.getvalue() and recent.id not in out.getvalue()
    assert not keys.is_erased(conversation.id)

    schedule_retention(now, soon=True)
    assert timers.fire_due(now + dt.timedelta(seconds=1)) == 1
    project()
    assert keys.is_erased(conversation.id) and not keys.is_erased(recent.id)
    assert secrets_in(dump()) == []
    assert "fresh words" in dump()
    assert [t.kind for t in timers.pending(RETENTION_TIMER)] == [RETENTION_TIMER]  # the next run


def test_the_erasure_frame_tells_every_page_to_forget_the_customer(conversation, client, project):
    from realtime.frames import envelopes

    project()
    assert erase(client, conversation.id).status_code == 202
    (erased,) = [r for r in EventStore().read_all(Cursor.start(), limit=1000) if r.event_type == "CustomerErased"]
    (envelope,) = envelopes([erased])
    frame = {"type": "customer.erased", "customer_id": conversation.id, "position": erased.position}
    assert [json.loads(f) for f in envelope.to_agents] == [frame]
    assert [json.loads(f) for f in envelope.to_customer] == [frame]


def test_events_written_before_sealing_are_sealed_on_upgrade_and_erasure_reaches_them(make_customer, client, settings):
    from django.core.management import call_command

    from eventstore.events import encode

    settings.PARLEY_INTEGRATION_KEY = KEY
    customer = make_customer(name=NAME, email=EMAIL)
    assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": SECRET}).status_code == 201
    for r in EventStore().read_all(Cursor.start()):  # as an older release stored them: in clear
        StoredEvent.objects.filter(position=r.position).update(data=json.dumps(encode(r.event)))
    assert SECRET in "".join(StoredEvent.objects.values_list("data", flat=True))

    out = io.StringIO()
    call_command("seal_events", stdout=out)
    assert "sealed 2 event(s)" in out.getvalue()
    assert secrets_in("".join(StoredEvent.objects.values_list("data", flat=True))) == []
    assert SECRET in [r.event.body for r in EventStore().read_all(Cursor.start()) if r.event_type == "MessageSent"]
    call_command("seal_events", stdout=io.StringIO())  # again: nothing changes
    assert erase(client, customer.id).status_code == 202
    assert not [r for r in EventStore().read_all(Cursor.start()) if r.event_type == "MessageSent"]


def test_erasure_during_a_webhook_retry_backlog_sends_nothing_more_about_the_customer(
    receiver, client, make_customer,  # noqa: F811
):
    from tests.integration.webhook_support import deliver_until, says, worker
    from tests.integration.webhook_support import run_pipeline as run_webhooks

    customer = make_customer(name=NAME, email=EMAIL)
    other = make_customer(name="Other Person", email="other@example.com")
    receiver.fail_first = 1_000  # the receiver is down: every delivery waits for a retry
    register(client, receiver, ["message.created", "customer.erased"])
    for i in range(3):
        says(customer, f"{SECRET} {i}")
    says(other, "the other customer's words")
    run_webhooks()
    w = worker()
    for _ in range(5):
        w.run_once()
    assert WebhookDelivery.objects.filter(customer_id=customer.id, state="pending").count() == 3
    assert receiver.requests and not receiver.accepted()  # tried, refused

    assert erase(client, customer.id).status_code == 202
    run_webhooks()
    receiver.fail_first = 0  # back up: the backlog drains
    tried = len(receiver.requests)
    deliver_until(w, receiver, 2)  # the other customer's message, and the erasure
    later = receiver.requests[tried:]
    assert secrets_in(str([req.body for req in later])) == []
    accepted = [req.body for req in receiver.accepted()]
    assert {"type": "customer.erased", "customer_id": customer.id} in [
        {"type": b["type"], "customer_id": b["data"].get("customer_id")} for b in accepted if b["type"] == "customer.erased"
    ]
    assert any("the other customer's words" in str(b) for b in accepted)  # the other customer's backlog goes on
    assert secrets_in(dump()) == []


def test_an_erased_customers_conversation_is_no_agents_load_any_more(customer, agent, client, settings):
    from conversations.models import Routing
    from project.bootstrap import catch_up

    settings.PARLEY_INTEGRATION_KEY = KEY
    assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": "hello"}).status_code == 201
    assert agent.post(f"/api/v1/conversations/{customer.id}/claim").status_code == 200
    catch_up("pipeline", "workflow")
    assert Routing.objects.filter(customer_id=customer.id).exists()
    assert erase(client, customer.id).status_code == 202
    catch_up("pipeline", "workflow")
    assert not Routing.objects.filter(customer_id=customer.id).exists()


def test_an_erased_customers_upload_is_refused_and_nothing_is_stored(customer, client, settings, _private_media):
    from attachments.models import Attachment

    settings.PARLEY_INTEGRATION_KEY = KEY
    assert erase(client, customer.id).status_code == 202
    picture = files.png((9, 9))
    r = customer.client.post("/api/v1/attachments", {"file": SimpleUploadedFile("id-card.png", picture)},
                             HTTP_AUTHORIZATION=f"Bearer {customer.token}")
    assert r.status_code == 410 and r.json()["error"]["code"] == "erased"
    assert not Attachment.objects.exists()
    assert picture not in media_bytes(_private_media)


def test_a_process_that_still_remembers_the_key_cannot_write_after_the_erasure(customer, client, settings):
    settings.PARLEY_INTEGRATION_KEY = KEY
    assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": "first"}).status_code == 201
    remembered = dict(keys._for_appending)  # as another process's memory still holds it
    assert erase(client, customer.id).status_code == 202
    keys._for_appending.update(remembered)
    count = StoredEvent.objects.count()
    r = customer.post("/api/v1/messages", {"message_id": new_id(), "body": SECRET})
    assert r.status_code == 410 and r.json()["error"]["code"] == "erased"
    assert StoredEvent.objects.count() == count


def test_keys_are_found_for_many_subjects_at_once_and_for_any_subject_text():
    # On PostgreSQL the subjects go as one comma-separated text; a subject with
    # a comma in it (never a customer's id, but the store does not assume) goes
    # as a list instead. Either way every key is found, and an erased one is known.
    subjects = [str(uuid.uuid4()) for _ in range(1200)]
    odd = "not, a uuid"
    keys.for_appending([*subjects, odd])
    erased = subjects[7]
    SubjectKey.objects.filter(subject=erased).update(wrapped="", erased_at=dt.datetime.now(dt.timezone.utc))
    ring = keys.for_reading(subjects)
    assert ring.erased(erased) and not any(ring.erased(s) for s in subjects if s != erased)
    assert ring.ciphers.keys() == set(subjects)
    mixed = keys.for_reading([subjects[0], odd])
    assert mixed.ciphers.keys() == {subjects[0], odd} and not mixed.erased(odd)


# -- backups: a restore of an older dump, with the newest key table ------------------------------------------


def full_dump() -> dict[str, Any]:
    """Every table's rows but the key table's, as the documented full dump keeps them
    (``pg_dump --exclude-table-data=parley_subject_keys``, docs/operations.md)."""
    saved: dict[str, Any] = {}
    with connection.cursor() as cursor:
        shadows: tuple[str, ...] = ()
        if connection.vendor == "sqlite":  # a full-text table and its own tables follow the rows' triggers
            cursor.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")
            shadows = tuple(name for (name,) in cursor.fetchall())
        for table in connection.introspection.table_names(cursor):
            if table == keys.TABLE or table.startswith(("sqlite_", *shadows)):
                continue
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f'COPY "{table}" TO STDOUT') as copy:
                    saved[table] = b"".join(bytes(block) for block in copy)
            else:
                cursor.execute(f'SELECT * FROM "{table}"')
                saved[table] = cursor.fetchall()
    return saved


def restore(saved: dict[str, Any]) -> None:
    """Put every table but the key table back as ``saved`` holds it: the key table stays the newest."""
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for table, rows in saved.items():
            cursor.execute(f'DELETE FROM "{table}"')
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(rows)
            elif rows:
                marks = ", ".join(["%s"] * len(rows[0]))
                cursor.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)


def test_a_restore_of_an_older_dump_brings_nothing_of_an_erased_customer_back_once_erasures_are_reapplied(
    conversation, agent, client, project, _private_media, tmp_path,
):
    import shutil

    from django.core.management import call_command

    from customers.models import Customer
    from tests.integration.test_agent_tools import settle

    settle()
    project()
    dumped, media = full_dump(), tmp_path / "media-backup"
    shutil.copytree(_private_media, media)
    # Sent after the dump, so only the media backup (made later) holds its file.
    late = upload(conversation, "late-scan.png", late_picture := files.png((6, 11)))
    shutil.copytree(_private_media, media, dirs_exist_ok=True)
    assert erase(client, conversation.id).status_code == 202
    project()
    catch_up("workflow")
    assert secrets_in(dump()) == [] and media_bytes(_private_media).find(conversation.picture) == -1

    restore(dumped)  # the database as the old full dump held it, and the newest key table
    shutil.copytree(media, _private_media, dirs_exist_ok=True)
    assert Customer.objects.filter(id=conversation.id).exists()  # what the restore brought back
    assert secrets_in(dump()) != [] and conversation.picture in media_bytes(_private_media)

    out = io.StringIO()
    call_command("reapply_erasures", "--sweep-files", stdout=out)
    assert "1 erased customer(s) checked" in out.getvalue() and "2 file(s) no row names deleted" in out.getvalue()  # the late file, its thumbnail
    project()
    catch_up("workflow")
    rebuild.rebuild(read_models())

    assert secrets_in(dump()) == []
    kept_after_erasure(conversation.id)
    assert files_of(_private_media, conversation.attachment) == [] and files_of(_private_media, late) == []
    assert conversation.picture not in media_bytes(_private_media) and late_picture not in media_bytes(_private_media)
    assert integration(client, "get", f"/api/v1/customers/{conversation.id}").status_code == 404
    assert agent.get(f"/api/v1/conversations/{conversation.id}").status_code == 404
    assert integration(client, "get", f"/api/v1/customers/{conversation.id}/export").status_code == 404
    # Applied once: running it again appends nothing.
    count = StoredEvent.objects.count()
    call_command("reapply_erasures", stdout=io.StringIO())
    assert StoredEvent.objects.count() == count
    assert StoredEvent.objects.filter(event_type="CustomerErased").count() == 1


# -- attachments: files deleted for sure, uploads racing the erasure -----------------------------------------


def test_files_an_erasure_could_not_delete_are_deleted_once_the_storage_is_back(
    conversation, client, _private_media, monkeypatch,
):
    from django.core.files.storage import FileSystemStorage

    from attachments.models import Attachment
    from workers import timers

    def away(self: Any, name: str) -> None:
        raise OSError("the storage is away")

    mine = [conversation.attachment, f"{conversation.attachment}.thumb"]
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)
    with monkeypatch.context() as storage_away:
        storage_away.setattr(FileSystemStorage, "delete", away)
        assert erase(client, conversation.id).status_code == 202
        assert not Attachment.objects.exists()
        assert files_of(_private_media, conversation.attachment) == mine  # the attempt after the commit failed
        timers.fire_due(now=soon)  # still away: tried again later
        assert files_of(_private_media, conversation.attachment) == mine
    timers.fire_due(now=soon + timers.RETRY_CAP)
    assert files_of(_private_media, conversation.attachment) == []
    assert conversation.picture not in media_bytes(_private_media)


@pytest.mark.postgres
def test_an_upload_racing_the_erasure_leaves_no_row_and_no_file(make_customer, client, settings, _private_media):

    from attachments.models import Attachment

    settings.PARLEY_INTEGRATION_KEY = KEY
    settings.PARLEY_CUSTOMER_UPLOADS_PER_MINUTE = 10_000
    statuses: list[int] = []
    customers = [make_customer(name=NAME, email=f"{n}.{EMAIL}") for n in range(3)]
    for customer in customers:  # a few rounds: each erasure meets uploads in flight

        def upload_one(c: Any, n: int, i: int, customer: Any = customer) -> int:
            data = f"{SECRET} {customer.id} {n}.{i}".encode()
            return c.post("/api/v1/attachments", {"file": SimpleUploadedFile(f"note-{n}-{i}.txt", data)},
                          HTTP_AUTHORIZATION=f"Bearer {customer.token}").status_code

        r, round_statuses = erase_while(client, customer, upload_one, requests=12)
        statuses += round_statuses
        assert r.status_code == 202
    assert set(statuses) <= {201, 410}, statuses
    assert 410 in statuses  # some uploads came after an erasure...
    left = Attachment.objects.filter(uploader_id__in=[c.id for c in customers])
    assert list(left.values_list("id", flat=True)) == []  # ...and none before it outlived it
    assert SECRET.encode() not in media_bytes(_private_media)


@pytest.mark.postgres
def test_an_upload_that_commits_while_the_erasure_runs_is_erased_with_the_rest(customer, client, settings, _private_media):
    """The upload has checked the customer and written its row; the erasure runs before that commits."""
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.test import Client

    from attachments.models import Attachment

    settings.PARLEY_INTEGRATION_KEY = KEY
    ready, erased, holding = threading.Event(), threading.Event(), threading.local()
    commit = BaseDatabaseWrapper.commit

    def commit_once_the_erasure_ran_or_waits(self: Any) -> None:
        if getattr(holding, "upload", False):
            holding.upload = False
            ready.set()
            for _ in range(6000):  # until the erasure is done, or waits for this transaction
                with self.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    if cursor.fetchone()[0] or erased.wait(0.01):
                        break
        commit(self)

    statuses: list[int] = []

    def uploader() -> None:
        try:
            holding.upload = True
            r = Client().post("/api/v1/attachments", {"file": SimpleUploadedFile("late.txt", f"{SECRET} late".encode())},
                              HTTP_AUTHORIZATION=f"Bearer {customer.token}")
            statuses.append(r.status_code)
        finally:
            ready.set()
            connections.close_all()

    settings_commit = pytest.MonkeyPatch()
    settings_commit.setattr(BaseDatabaseWrapper, "commit", commit_once_the_erasure_ran_or_waits)
    try:
        thread = threading.Thread(target=uploader)
        thread.start()
        ready.wait()
        r = erase(client, customer.id)
        erased.set()
        thread.join()
    finally:
        settings_commit.undo()
    assert r.status_code == 202 and statuses in ([201], [410]), statuses
    assert not Attachment.objects.filter(uploader_id=customer.id).exists()
    assert SECRET.encode() not in media_bytes(_private_media)
