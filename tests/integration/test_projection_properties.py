"""Projections built live equal a full replay and a brute-force fold of the log.

Hypothesis drives random sequences of sends, edits, reads, renames,
duplicates, crashes and the workflow's commands and timers through the real
command handlers, on SQLite and (in CI) PostgreSQL. Live projection runs interleaved with the commands in
random batch sizes; a crash is injected mid-batch now and then.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import uuid
from collections import Counter, defaultdict
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attachments.models import Attachment
from attachments.services import attachment_upload
from chat.commands import Actor, EditMessage, MarkMessageAsRead, SendMessage
from chat.errors import ChatError
from chat.events import SenderKind
from chat.handlers import edit_message, mark_message_as_read, send_message
from conversations import handlers as workflow_handlers
from conversations.commands import (
    AddNote,
    Agent,
    ChangeLabels,
    Claim,
    MarkRead,
    MarkUnread,
    Rate,
    SetStatus,
    Snooze,
    clean_comment,
    clean_score,
)
from conversations.errors import ConversationError
from conversations.models import AgentTurn, Routing
from customers.models import Customer
from customers.services import customer_register, customer_update
from eventstore import partitions
from eventstore.events import Cursor, RecordedEvent
from eventstore.models import Checkpoint, StoredEvent
from eventstore.runner import ConsumerRunner
from eventstore.store import EventStore
from project.bootstrap import workflow
from readmodels import fulltext, reports
from readmodels import rebuild as rebuild_module
from readmodels.asof import EventRowsProjection
from readmodels.models import (
    AgentUnread,
    Badge,
    Conversation,
    ConversationLabel,
    DirectoryEntry,
    EventRows,
    ReportConversation,
    ReportCount,
    ReportFact,
    SearchEntry,
    TimelineMessage,
    TimelineNote,
    Unread,
)
from readmodels.names import names_for as shown_names
from readmodels.present import present_conversation, present_row
from readmodels.projections import PIPELINE, Facts, Projection, ReadModels, read_models
from readmodels.rebuild import rebuild
from workers import timers
from workers.models import Timer

pytestmark = pytest.mark.django_db(transaction=True)


def upload(actor: Actor, name: str) -> uuid.UUID:
    row = attachment_upload(uploader_kind=actor.kind.value, uploader_id=actor.id, file=io.BytesIO(b"see attached"),
                            name=name, size=12)
    return row.id

CUSTOMERS = 2
MESSAGES = 4
AGENTS = [Actor(SenderKind.AGENT, "1", "Grace"), Actor(SenderKind.AGENT, "2", "Linus")]
BODIES = ["hi", "hello", "thanks", "ok", ""]  # "": refused, unless the message has attachments

# ("send", message, customer, by an agent, body, how many files it carries)
send = st.tuples(st.just("send"), st.integers(0, MESSAGES - 1), st.integers(0, CUSTOMERS - 1), st.booleans(),
                 st.sampled_from(BODIES), st.sampled_from([0, 0, 1, 2]))
edit = st.tuples(st.just("edit"), st.integers(0, MESSAGES - 1), st.booleans(), st.sampled_from(BODIES))
read = st.tuples(st.just("read"), st.integers(0, MESSAGES - 1), st.booleans())
op = st.one_of(
    send, send, send, edit, edit, read, read,
    st.tuples(st.just("rename"), st.integers(0, CUSTOMERS - 1), st.sampled_from(["Ada", "Bea", "Cy"])),
    st.tuples(st.just("project"), st.integers(1, 7)),
    st.tuples(st.just("claim"), st.integers(0, 1), st.integers(0, CUSTOMERS - 1)),
    st.tuples(st.just("status"), st.sampled_from(["open", "pending", "resolved"]), st.integers(0, CUSTOMERS - 1)),
    st.tuples(st.just("snooze"), st.integers(0, CUSTOMERS - 1)),
    st.tuples(st.just("note"), st.integers(0, 2), st.integers(0, CUSTOMERS - 1), st.sampled_from(BODIES)),
    st.tuples(st.just("labels"), st.integers(0, CUSTOMERS - 1), st.sets(st.sampled_from(["vip", "billing", "urgent"]), max_size=2),
              st.sets(st.sampled_from(["vip", "billing", "urgent"]), max_size=2)),
    st.tuples(st.just("mark"), st.integers(0, 1), st.integers(0, CUSTOMERS - 1), st.booleans()),
    st.just(("workflow",)),
    st.just(("timers",)),  # every timer the workflow set: first responses past their target, snoozes that end
    st.tuples(st.just("rate"), st.integers(0, CUSTOMERS - 1), st.integers(0, 6), st.sampled_from(["", "great"])),
    st.tuples(st.just("crash"), st.integers(1, 7), st.integers(0, 3)),
)


class CrashAfter(Projection):
    """Wraps a projection and raises once it has applied ``n`` events (in the middle of a batch)."""

    def __init__(self, inner: Projection, n: int) -> None:
        self.inner, self.n = inner, n
        self.name, self.event_types, self.tables, self.needs = inner.name, inner.event_types, inner.tables, inner.needs

    def want(self, events: Any, unit: Any) -> None:
        self.inner.want(events, unit)

    def apply(self, r: RecordedEvent, unit: Any, facts: Facts) -> None:
        if self.n == 0:
            raise RuntimeError("injected crash mid-batch")
        self.n -= 1
        self.inner.apply(r, unit, facts)


def pipeline_projections() -> list[Projection]:
    """The pipeline's projections: the read models and the rows as of each event."""
    return [*read_models(), EventRowsProjection()]


def wipe() -> None:
    for model in (StoredEvent, Checkpoint, Customer, DirectoryEntry, TimelineMessage, Conversation, Unread, Badge,
                  TimelineNote, SearchEntry, EventRows, Routing, AgentTurn, Timer, Attachment, ConversationLabel,
                  AgentUnread, ReportFact, ReportCount, ReportConversation):
        model.objects.all().delete()


def snapshot() -> dict[str, Any]:
    def rows(model: Any, *fields: str) -> list[tuple]:
        return sorted(model.objects.values_list(*fields))

    return {
        "directory": rows(DirectoryEntry, "customer_id", "name", "email", "phone", "tx", "position"),
        "timeline": rows(TimelineMessage, "message_id", "customer_id", "sender_kind", "sender_id", "body", "sent_at", "edited_at", "read_at", "tx", "position", "attachments"),
        "conversations": rows(Conversation, "customer_id", "last_message", "unread_for_agents", "awaiting_reply", "last_activity_at", "tx", "position",
                              "status", "assignee_id", "snoozed_until", "first_response_due_at", "sla_breached", "labels", "rating"),
        "report_facts": rows(ReportFact, "key", "customer_id", "kind", "day", "agent_id", "value", "tx", "position"),
        "report_counts": rows(ReportCount, "key", "customer_id", "kind", "day", "agent_id", "count", "tx", "position"),
        "report_state": rows(ReportConversation, "customer_id", "open_since", "waiting_since", "assignee_id", "resolutions",
                             "tx", "position"),
        "labels": rows(ConversationLabel, "key", "customer_id", "label", "tx", "position"),
        "agent_marks": rows(AgentUnread, "key", "agent_id", "customer_id", "marked_at", "tx", "position"),
        "notes": rows(TimelineNote, "note_id", "customer_id", "author_id", "body", "created_at", "tx", "position"),
        "agent_unread": sorted(Unread.objects.filter(reader="agents").values_list("message_id", "customer_id")),
        "badge": rows(Badge, "customer_id", "unread", "tx", "position"),
        "badge_unread": sorted(Unread.objects.filter(reader="customer").values_list("message_id", "customer_id")),
        "search": rows(SearchEntry, "key", "kind", "customer_id", "message_id", "text", "tx", "position"),
        # What the full-text index finds (SQLite's FTS5 table, PostgreSQL's GIN), not only its rows.
        "found": {word: sorted(str(m.message_id or m.customer_id) for m in fulltext.match(word, until=Cursor(2**62, 2**62), limit=100))
                  for word in (*filter(None, BODIES), "customer", "ada", "bea", "cy")},  # "" is no query
    }


def brute_force(events: list[RecordedEvent]) -> dict[str, Any]:
    """The read models' meaning, folded naively from the whole log."""
    names: dict[uuid.UUID, str] = {}
    messages: dict[uuid.UUID, dict[str, Any]] = {}
    status: dict[uuid.UUID, str] = {}
    assignee: dict[uuid.UUID, str | None] = {}
    notes: dict[uuid.UUID, str] = {}
    labels: dict[uuid.UUID, set[str]] = {}
    marks: set[tuple[str, uuid.UUID]] = set()
    resolutions: dict[uuid.UUID, int] = {}
    ratings: dict[tuple[uuid.UUID, int], int] = {}
    for r in events:
        e: Any = r.event
        if r.event_type == "ConversationStatusChanged" and e.status == "resolved":
            resolutions[e.customer_id] = resolutions.get(e.customer_id, 0) + 1
        if r.event_type == "ConversationRated":
            ratings[(e.customer_id, e.resolution)] = e.score
        if r.event_type == "ConversationLabelsChanged":
            labels[e.customer_id] = (labels.get(e.customer_id, set()) | set(e.added)) - set(e.removed)
        elif r.event_type == "ConversationMarkedUnread":
            marks.add((e.agent_id, e.customer_id))
        elif r.event_type == "ConversationMarkedRead":
            marks.discard((e.agent_id, e.customer_id))
        elif r.event_type == "ConversationAssigned":
            assignee[e.customer_id] = e.assignee_id
        elif r.event_type == "ConversationStatusChanged":
            status[e.customer_id] = e.status
        elif r.event_type == "ConversationSnoozed":
            status[e.customer_id] = "snoozed"
        elif r.event_type == "ConversationReopened":
            status[e.customer_id] = "open"
        elif r.event_type == "NoteAdded":
            notes[e.note_id] = e.body
        elif r.event_type in ("CustomerRegistered", "ContactDetailsChanged"):
            names[e.customer_id] = e.name
        elif r.event_type == "MessageSent":
            messages[e.message_id] = {"customer": e.customer_id, "kind": e.sender_kind, "body": e.body, "read": False, "sent_at": e.sent_at,
                                      "files": [(str(a.attachment_id), a.name) for a in e.attachments]}
        elif r.event_type == "MessageEdited":
            messages[e.message_id]["body"] = e.body
        elif r.event_type == "MessageMarkedAsRead":
            messages[e.message_id]["read"] = True
    customers = {m["customer"] for m in messages.values()}
    last = {}
    for mid, m in messages.items():  # insertion order is log order of MessageSent
        last[m["customer"]] = (mid, m["kind"])
    return {
        "ratings": ratings,
        "resolved": sum(resolutions.values()),
        "messages_by_side": {side: sum(1 for m in messages.values() if m["kind"] == side) for side in ("customer", "agent")},
        "last_message": {c: str(mid) for c, (mid, _) in last.items()},
        "awaiting_reply": {c: kind == "customer" for c, (_, kind) in last.items()},
        "agent_unread": {mid for mid, m in messages.items() if m["kind"] == "customer" and not m["read"]},
        "badge_unread": {mid for mid, m in messages.items() if m["kind"] == "agent" and not m["read"]},
        "names": names,
        "status": status,
        "assignee": {c: a for c, a in assignee.items() if a is not None},
        "notes": notes,
        "labels": {c: ls for c, ls in labels.items() if ls},
        "marks": marks,
        "bodies": {mid: m["body"] for mid, m in messages.items()},
        "files": {mid: m["files"] for mid, m in messages.items()},
        "badge": {
            c: sum(1 for m in messages.values() if m["customer"] == c and m["kind"] == "agent" and not m["read"])
            for c in customers
        },
        "unread_for_agents": {
            c: sum(1 for m in messages.values() if m["customer"] == c and m["kind"] == "customer" and not m["read"])
            for c in customers
        },
    }


#: A report's figures (readmodels.reports), each compared with the brute-force fold's.
FIGURES = ("conversations", "resolved", "messages", "first_response_seconds", "resolution_seconds", "rating",
           "sla_breaches")


def report_by_brute_force(events: list[RecordedEvent]) -> tuple[dict[str, Any], dict[str, dict[str, Any]], set[dt.date]]:
    """What reports.summary says of the whole log, folded naively (days in UTC, no business hours: a wait
    counts in full): the team's figures, each agent's, and the days the facts fall on.

    A conversation starts with a customer's message when it is not open (new, or resolved since); a first
    response is the wait from the message that started a waiting period to the reply that stopped it, the
    replier's; a resolution the time from the start, the resolver's; a rating (the last of its period) and a
    breach are the assignee's at the time. Percentiles are the nearest rank."""
    def day(at: dt.datetime) -> dt.date:
        return at.astimezone(dt.timezone.utc).date()

    writer: dict[uuid.UUID, str] = {}
    open_since: dict[uuid.UUID, dt.datetime] = {}
    waiting_since: dict[uuid.UUID, dt.datetime] = {}
    assignee: dict[uuid.UUID, str] = {}
    resolutions: Counter[uuid.UUID] = Counter()
    counted: list[tuple[str, dt.date, str]] = []  # (kind, day, agent)
    measured: dict[tuple[str, uuid.UUID, Any], tuple[dt.date, str, float]] = {}  # a later one of a key replaces
    for r in events:
        e: Any = r.event
        c: Any = getattr(e, "customer_id", None)
        if r.event_type == "MessageSent":
            writer[e.message_id] = e.sender_id
            if e.sender_kind == "customer":
                if c not in open_since:
                    open_since[c] = e.sent_at
                    counted.append(("started", day(e.sent_at), ""))
                counted.append(("customer_message", day(e.sent_at), ""))
            elif e.sender_kind == "agent":
                counted.append(("agent_message", day(e.sent_at), e.sender_id))
        elif r.event_type == "ConversationAssigned":
            assignee[c] = e.assignee_id or ""
        elif r.event_type == "FirstResponseClockStarted":
            waiting_since[c] = e.since
        elif r.event_type == "FirstResponseClockStopped":
            since = waiting_since.pop(c, None)
            if e.message_id is not None and since is not None:
                measured[("first_response", c, e.period_id)] = (day(e.at), writer[e.message_id], (e.at - since).total_seconds())
        elif r.event_type == "FirstResponseSlaBreached":
            counted.append(("sla_breach", day(e.at), assignee.get(c, "")))
        elif r.event_type == "ConversationStatusChanged" and e.status == "resolved":
            resolutions[c] += 1
            resolver = e.actor.removeprefix("agent:") if e.actor.startswith("agent:") else ""
            counted.append(("resolved", day(e.at), resolver))
            started = open_since.pop(c, None)
            if started is not None:
                measured[("resolution", c, resolutions[c])] = (day(e.at), resolver, (e.at - started).total_seconds())
        elif r.event_type == "ConversationRated":
            measured[("rating", c, e.resolution)] = (day(e.at), assignee.get(c, ""), float(e.score))

    def nearest_rank(values: list[float], p: int) -> float | None:
        return round(sorted(values)[math.ceil(len(values) * p / 100) - 1], 1) if values else None

    def figures(agent: str | None) -> dict[str, Any]:
        n = Counter(kind for kind, _, a in counted if agent in (None, a))
        values: dict[str, list[float]] = defaultdict(list)
        for (kind, *_), (_, a, value) in measured.items():
            if agent in (None, a):
                values[kind].append(value)

        def spread(kind: str) -> dict[str, Any]:
            vs = values[kind]
            return {"count": len(vs), "p50": nearest_rank(vs, 50), "p90": nearest_rank(vs, 90)}

        scores = values["rating"]
        return {
            "conversations": n["started"], "resolved": n["resolved"],
            "messages": {"customer": n["customer_message"], "agent": n["agent_message"]},
            "first_response_seconds": spread("first_response"), "resolution_seconds": spread("resolution"),
            "rating": {"count": len(scores), "average": round(sum(scores) / len(scores), 2) if scores else None,
                       "distribution": {str(k): scores.count(k) for k in range(1, 6)}},
            "sla_breaches": n["sla_breach"],
        }

    agents = {a for _, _, a in counted} | {a for _, a, _ in measured.values()}
    days = {d for _, d, _ in counted} | {d for d, _, _ in measured.values()}
    return figures(None), {a: figures(a) for a in sorted(agents - {""})}, days


def wait_until_all_readable() -> None:
    """On PostgreSQL readers stop at the oldest running transaction of the
    cluster, which may be another session's: let those finish first."""
    import time

    for _ in range(500):
        if EventStore().count_after(Cursor.start()) == StoredEvent.objects.count():
            return
        time.sleep(0.01)
    raise AssertionError("committed events stayed unreadable")


def run_live(batch: int) -> None:
    """The projections as the pipeline runs them: one group (each of its partitions), one transaction per batch."""
    for part in partitions.all_partitions():
        ConsumerRunner([ReadModels(pipeline_projections())], name=PIPELINE, batch_size=batch, partition=part).catch_up()


def assert_event_rows_end_where_the_read_models_are() -> None:
    """The rows recorded as of each customer's and message's last event are the read models' rows now."""
    last_conversation: dict[str, Any] = {}
    last_message: dict[str, Any] = {}
    for rows in EventRows.objects.order_by("tx", "position").values_list("rows", flat=True):
        if "conversation" in rows:
            last_conversation[rows["conversation"]["customer_id"]] = rows["conversation"]
        if "message" in rows:
            last_message[rows["message"]["message_id"]] = rows["message"]
    for conv in Conversation.objects.values():
        assert last_conversation[str(conv["customer_id"])] == present_conversation(conv, shown_names([conv]))
    for message in TimelineMessage.objects.values():
        # A customer renamed since shows their name as of then: compare the rest.
        recorded, now = last_message[str(message["message_id"])], present_row(message, shown_names([message]))
        assert {**recorded, "sender": None} == {**now, "sender": None}


@pytest.mark.parametrize("partition_count", [1, 3])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=12, max_size=40))
def test_live_projections_equal_a_replay_and_a_brute_force_fold(ops, partition_count, settings):
    """Also with the pipeline split in partitions: what they build together is the same."""
    settings.PARLEY_PIPELINE_PARTITIONS = partition_count
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 60  # a first response can be late (the "timers" step)
    settings.PARLEY_TIME_ZONE, settings.PARLEY_BUSINESS_HOURS = "UTC", ""
    wipe()
    customers = [customer_register(name=f"Customer {i}", external_id=f"c{i}").customer for i in range(CUSTOMERS)]
    message_ids = [uuid.uuid4() for _ in range(MESSAGES)]
    owner: dict[int, int] = {}
    sender: dict[int, Actor] = {}
    for o in ops:
        before = StoredEvent.objects.count()
        try:
            if o[0] == "send":
                _, k, c, by_agent, body, n_files = o
                cust = customers[owner.setdefault(k, c)]
                actor = AGENTS[k % 2] if by_agent else Actor(SenderKind.CUSTOMER, str(cust.id))
                files = tuple(upload(actor, f"note-{i}.txt") for i in range(n_files))
                send_message(SendMessage(message_ids[k], cust.id, actor, body, attachments=files))
                sender.setdefault(k, actor)
            elif o[0] == "edit":
                # Mostly the real sender (so edits happen), sometimes someone else (refused).
                _, k, as_sender, body = o
                real = sender.get(k, AGENTS[0])
                actor = real if as_sender else (AGENTS[1] if real.kind is SenderKind.CUSTOMER else AGENTS[(int(real.id)) % 2])
                edit_message(EditMessage(message_ids[k], actor, body))
            elif o[0] == "read":
                # The receiving side (any agent, or the customer), or the sender (refused).
                _, k, as_receiver = o
                real = sender.get(k, AGENTS[0])
                customer = Actor(SenderKind.CUSTOMER, str(customers[owner.get(k, 0)].id))
                receiver = customer if real.kind is SenderKind.AGENT else AGENTS[k % 2]
                mark_message_as_read(MarkMessageAsRead(message_ids[k], receiver if as_receiver else real))
            elif o[0] == "rename":
                customer_update(customer_id=customers[o[1]].id, name=o[2])
            elif o[0] == "project":
                run_live(o[1])
            elif o[0] == "claim":
                workflow_handlers.claim(Claim(customers[o[2]].id, Agent(AGENTS[o[1]].id, AGENTS[o[1]].name)))
            elif o[0] == "status":
                workflow_handlers.set_status(SetStatus(customers[o[2]].id, o[1], Agent("1", "Grace")))
            elif o[0] == "snooze":
                until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
                workflow_handlers.snooze(Snooze(customers[o[1]].id, until, Agent("1", "Grace")))
            elif o[0] == "note":
                note_id = uuid.UUID(int=o[1] + 1)
                workflow_handlers.add_note(AddNote(note_id, customers[o[2]].id, Agent("1", "Grace"), o[3]))
            elif o[0] == "labels":
                _, c, add, remove = o
                workflow_handlers.change_labels(ChangeLabels(customers[c].id, tuple(add), tuple(remove), Agent("1", "Grace")))
            elif o[0] == "mark":
                _, a, c, unread = o
                agent = Agent(AGENTS[a].id, AGENTS[a].name)
                if unread:
                    workflow_handlers.mark_unread(MarkUnread(customers[c].id, agent))
                else:
                    workflow_handlers.mark_read(MarkRead(customers[c].id, agent))
            elif o[0] == "rate":
                _, c, score, comment = o
                workflow_handlers.rate(Rate(customers[c].id, clean_score(score), clean_comment(comment)))
            elif o[0] == "workflow":
                for part in partitions.all_partitions():
                    workflow(partition=part).catch_up()
            elif o[0] == "timers":
                timers.fire_due(now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2))
            elif o[0] == "crash":
                # One member crashes mid-batch: the whole group's batch is undone.
                _, batch, n = o
                for crashing in range(len(pipeline_projections())):
                    members = [CrashAfter(p, n) if i == crashing else p for i, p in enumerate(pipeline_projections())]
                    try:
                        for part in partitions.all_partitions():
                            ConsumerRunner([ReadModels(members)], name=PIPELINE, batch_size=batch,
                                           partition=part).catch_up()
                    except RuntimeError:
                        pass
        except (ChatError, ConversationError):
            assert StoredEvent.objects.count() == before, "a refused command appended something"
    wait_until_all_readable()
    run_live(5)
    live = snapshot()
    assert_event_rows_end_where_the_read_models_are()

    log = EventStore().read_all(Cursor.start(), limit=100_000)
    expected = brute_force(log)

    # The log alone rebuilds everything: the attachments context's own table is not asked.
    Attachment.objects.all().delete()
    rebuild(read_models())
    replayed = snapshot()
    assert live == replayed

    # A rebuild that outgrows its memory: rows written and dropped every few
    # events, read back when a later batch needs them.
    with mock.patch.object(rebuild_module, "HELD_ROWS", 3):
        rebuild(read_models(), batch_size=2)
    assert snapshot() == live

    assert {r[0]: r[1] for r in live["directory"]} == expected["names"]
    assert {r[0]: r[4] for r in live["timeline"]} == expected["bodies"]
    assert {r[0]: [(a["attachment_id"], a["name"]) for a in r[10]] for r in live["timeline"]} == expected["files"]
    assert live["found"] == {  # every body and name is one or two words, none a prefix of another
        word: sorted([str(m) for m, body in expected["bodies"].items() if body == word]
                     + [str(c) for c, name in expected["names"].items() if name.split()[0].lower() == word])
        for word in live["found"]
    }
    assert {c: u for c, u, *_ in live["badge"] if u} == {c: n for c, n in expected["badge"].items() if n}
    with_messages = [r for r in live["conversations"] if r[1] is not None]
    assert {r[0]: r[2] for r in with_messages} == expected["unread_for_agents"]
    assert {r[0]: r[1]["message_id"] for r in with_messages} == expected["last_message"]
    assert {r[0]: r[3] for r in with_messages} == expected["awaiting_reply"]
    assert {r[0]: r[7] for r in live["conversations"] if r[7] != "open"} == {
        c: s for c, s in expected["status"].items() if s != "open"}
    assert {r[0]: r[8] for r in live["conversations"] if r[8] is not None} == expected["assignee"]
    assert {r[0]: r[3] for r in live["notes"]} == expected["notes"]
    assert {r[0]: set(r[12]) for r in live["conversations"] if r[12]} == expected["labels"]
    assert {(r[1], r[2]) for r in live["labels"]} == {(c, label) for c, ls in expected["labels"].items() for label in ls}
    assert {(r[1], r[2]) for r in live["agent_marks"]} == expected["marks"]
    assert {r[0] for r in live["agent_unread"]} == expected["agent_unread"]
    assert {r[0] for r in live["badge_unread"]} == expected["badge_unread"]
    # The reports' facts: every message counted once by side, each resolution, the last rating of each period.
    tallied = {kind: sum(r[5] for r in live["report_counts"] if r[2] == kind)
               for kind in ("customer_message", "agent_message", "resolved")}
    assert {side: tallied[f"{side}_message"] for side in ("customer", "agent")} == expected["messages_by_side"]
    assert tallied["resolved"] == expected["resolved"]
    assert {(r[1], int(r[0].rsplit(":", 1)[1])): int(r[5]) for r in live["report_facts"] if r[2] == "rating"} == expected["ratings"]
    # And every figure a report adds up from them, over all the log's days, for the team and each agent.
    team, by_agent, days = report_by_brute_force(log)
    today = dt.datetime.now(dt.timezone.utc).date()
    summary = reports.summary(min(days, default=today), max(days, default=today))
    assert {k: summary[k] for k in FIGURES} == team
    assert {a["agent"]["id"]: {k: a[k] for k in FIGURES} for a in summary["by_agent"]} == by_agent
    assert badges_as_of_each_event(log) == {
        p: rows["badge"]["unread"] for p, rows in EventRows.objects.values_list("position", "rows") if "badge" in rows}


def badges_as_of_each_event(log: list[RecordedEvent]) -> dict[int, int]:
    """The customer's badge right after each event that can move it, folded naively from the log."""
    unread: dict[uuid.UUID, set[uuid.UUID]] = {}
    agent_messages: set[uuid.UUID] = set()
    out = {}
    for r in log:
        e: Any = r.event
        if r.event_type == "MessageSent" and e.sender_kind == "agent":
            agent_messages.add(e.message_id)
            unread.setdefault(e.customer_id, set()).add(e.message_id)
        elif r.event_type == "MessageMarkedAsRead" and e.reader_kind == "customer":
            unread.setdefault(e.customer_id, set()).discard(e.message_id)
        else:
            continue
        out[r.position] = len(unread[e.customer_id])
    return out
