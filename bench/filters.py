"""The agents' list with its filters at a few thousand conversations (issue 25).

Fills the conversation list's read models of a scratch database directly
(``CONVERSATIONS`` rows of ``readmodels_conversation``, their labels in
``readmodels_conversationlabel``, one agent's unread marks in
``readmodels_agentunread``), then times ``readmodels.selectors.conversations``
as ``GET /api/v1/conversations`` runs it, for each filter the dashboard
offers, on its first page and on a page far down the list (after the
conversation at 80 % of the way), ``LIMIT`` conversations a page:

* **label**: the (customer, label) rows, a semi-join on their index
  (``labels_by_label``), for a label on 5 % of the conversations and one on
  0.5 %;
* **baseline**: the same label found in each row's own JSON
  (``labels @> '["vip"]'``), with no index: what the filter would cost
  without the table of its own.

Each query runs ``BENCH_FILTERS_REPEAT`` times after one untimed run; p50
and p99 in milliseconds are printed and written to docs/benchmarks.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/filters.py
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_note, loadavg, log, percentile, scratch_database  # noqa: E402

CONVERSATIONS = int(os.environ.get("BENCH_FILTERS_CONVERSATIONS", "5000"))
REPEAT = int(os.environ.get("BENCH_FILTERS_REPEAT", "30"))
LIMIT = 30
AGENTS = [str(i) for i in range(1, 9)]


def percentiles(fn: Callable[[], object]) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return percentile(times, 0.5), percentile(times, 0.99)


def fill() -> dict[str, object]:
    """The list's rows, as the pipeline would leave them (seeded: the same every run)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from readmodels.folds import agent_unread_key, label_key
    from readmodels.models import AgentUnread, Conversation, ConversationLabel
    from readmodels.projections import PIPELINE

    rng = random.Random(25)
    for agent in AGENTS:
        get_user_model().objects.create_user(f"agent{agent}", is_staff=True, first_name=f"Agent {agent}", id=int(agent))
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    convs, labels, marks = [], [], []
    for i in range(CONVERSATIONS):
        cid = uuid.UUID(int=rng.getrandbits(128))
        tags = sorted({t for t, p in (("vip", 0.05), ("rare", 0.005), ("billing", 0.2)) if rng.random() < p})
        assignee = rng.choice([None, *AGENTS])
        convs.append(Conversation(
            customer_id=cid, last_message=None, unread_for_agents=rng.choice([0, 0, 0, 1, 2]),
            awaiting_reply=rng.random() < 0.3, last_activity_at=start + dt.timedelta(minutes=i),
            status=rng.choice(["open", "open", "open", "pending", "snoozed", "resolved"]),
            assignee_id=assignee, assignee_name=f"Agent {assignee}" if assignee else "", labels=tags, tx=1, position=i + 1,
        ))
        labels += [ConversationLabel(key=label_key(cid, t), customer_id=cid, label=t, tx=1, position=i + 1) for t in tags]
        if rng.random() < 0.02:
            marks.append(AgentUnread(key=agent_unread_key("1", cid), agent_id="1", customer_id=cid, marked_at=start,
                                     tx=1, position=i + 1))
    Conversation.objects.bulk_create(convs, batch_size=2000)
    ConversationLabel.objects.bulk_create(labels, batch_size=2000)
    AgentUnread.objects.bulk_create(marks, batch_size=2000)
    with connection.cursor() as cur:
        cur.execute("INSERT INTO parley_checkpoints (name, tx, position, owner, updated_at) VALUES (%s, 1, %s, '', now())",
                    [PIPELINE, CONVERSATIONS + 1])
        for table in ("readmodels_conversation", "readmodels_conversationlabel", "readmodels_agentunread"):
            cur.execute(f"VACUUM ANALYZE {table}")
    ordered = sorted(convs, key=lambda c: (-c.last_activity_at.timestamp(), c.customer_id))
    deep = ordered[int(len(ordered) * 0.8)]
    return {"labels": len(labels), "marks": len(marks), "deep": (deep.last_activity_at, deep.customer_id)}


def main() -> int:
    load_before = loadavg()
    rows: list[list[str]] = []
    with scratch_database("filters") as _:
        from django.db import connection

        from readmodels import selectors
        from readmodels.selectors import ListFilter

        filled = fill()
        deep_at, deep_id = filled["deep"]  # type: ignore[misc]
        cases: list[tuple[str, ListFilter]] = [
            ("no filter", ListFilter()),
            ("Mine (`assignee=me`)", ListFilter(assignee="1")),
            ("Unassigned (`assignee=none`)", ListFilter(assignee="")),
            ("`status=pending`", ListFilter(status="pending")),
            ("`awaiting_reply=true`", ListFilter(awaiting_reply=True)),
            ("`unread=true` (an agent's)", ListFilter(unread_for="1")),
            ("`label=vip` (5 %)", ListFilter(label="vip")),
            ("`label=rare` (0.5 %)", ListFilter(label="rare")),
            ("`assignee=me&label=vip`", ListFilter(assignee="1", label="vip")),
        ]
        for what, filters in cases:
            first = percentiles(lambda f=filters: selectors.conversations(LIMIT, filters=f, viewer="1"))
            deep = percentiles(lambda f=filters: selectors.conversations(LIMIT, deep_at, before_id=deep_id, filters=f,
                                                                         viewer="1"))
            log(f"  {what}: first page p50 {first[0]:.1f} ms p99 {first[1]:.1f} ms; far down p50 {deep[0]:.1f} ms "
                f"p99 {deep[1]:.1f} ms")
            rows.append([what, f"{first[0]:.1f}", f"{first[1]:.1f}", f"{deep[0]:.1f}", f"{deep[1]:.1f}"])

        # The label's query alone (ids, no presenting), through the table of its own and through the JSON.
        side = ("SELECT customer_id FROM readmodels_conversation WHERE customer_id IN "
                "(SELECT customer_id FROM readmodels_conversationlabel WHERE label = %s) {} "
                "ORDER BY last_activity_at DESC, customer_id LIMIT %s")
        scan = "SELECT customer_id FROM readmodels_conversation WHERE labels @> %s::jsonb {} " \
               "ORDER BY last_activity_at DESC, customer_id LIMIT %s"
        older = "AND (last_activity_at < %s OR (last_activity_at = %s AND customer_id > %s))"

        def query(sql: str, params: list[object]) -> Callable[[], object]:
            def run() -> object:
                with connection.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall()
            return run

        for label in ("vip", "rare"):
            for how, sql, value in (("the (customer, label) index", side, label),
                                    ("baseline: the rows' JSON, no index", scan, f'["{label}"]')):
                first = percentiles(query(sql.format(""), [value, LIMIT]))
                deep = percentiles(query(sql.format(older), [value, deep_at, deep_at, deep_id, LIMIT]))
                log(f"  ids of label={label} by {how}: first p50 {first[0]:.2f} ms, far down p50 {deep[0]:.2f} ms")
                rows.append([f"`label={label}`, ids only: {how}", f"{first[0]:.2f}", f"{first[1]:.2f}",
                             f"{deep[0]:.2f}", f"{deep[1]:.2f}"])
        connection.close()

    from bench.report import table, write_section

    body = (
        f"**{CONVERSATIONS:,} conversations** in the list's read model ({filled['labels']:,} labels, "
        f"{filled['marks']:,} marked unread by one agent; 8 agents, statuses and assignees drawn at random), "
        f"filled directly. Each row is `readmodels.selectors.conversations` as `GET /api/v1/conversations` runs "
        f"it ({LIMIT} a page, the presented rows with the agents' names and the caller's own marks): its first "
        "page, and a page far down the list (after the conversation 80 % of the way down, with `before` and "
        "`before_id`). The last rows time the label's query alone (the page's ids, nothing presented): through "
        "the (customer, label) table's index, as the selector does, and, as a **baseline**, by looking for the "
        "label in each row's own JSON with no index (what PostgreSQL's JSON containment does without a GIN "
        "index; SQLite has neither). Milliseconds over "
        f"{REPEAT} runs each, after one untimed run."
        "\n\n"
        + table(["filter", "first page p50", "first page p99", "far down p50", "far down p99"], rows)
        + "\n"
    )
    body += "\n" + load_note(load_before)
    write_section("filters", "The conversation list's filters (bench/filters.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
