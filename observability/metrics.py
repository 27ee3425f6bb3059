"""Every metric a Parley process counts in, defined once (docs/metrics.md lists them).

The instrumented code sits on hot paths (a command, every frame to every
socket), so what it calls costs a lock and an addition: label values are
bound once, here, to children the callers increment directly
(``FRAMES_LIVE.inc()``) or through a small cache (``command_done``), never
looked up per call. Labels whose values come from outside (an inbound
webhook's source) are bounded before they become a series: an attacker must
not be able to make a process grow a new series per request.

What is read from the database at scrape time (a consumer's position and
lag) is not counted here but collected at scrape time
(eventstore.metrics.CheckpointCollector).

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps these values
in files that one process on the host can aggregate
(observability.exposition); the gauge says how (``livesum``: the sum over
live processes), and a process marks its files dead when it exits.
"""

from __future__ import annotations

import atexit
import os

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# A ``_created`` series per counter doubles what is stored for nothing
# Parley's dashboards use (rates are computed from the counters themselves).
disable_created_metrics()

# -- commands (chat.handlers) -------------------------------------------------------------

COMMANDS = ("SendMessage", "EditMessage", "MarkMessageAsRead")
ADAPTERS = ("http", "websocket", "webhook", "other")
#: A command appended its events / was a repeat or a no-op / was refused (a DomainError) / raised anything else.
COMMAND_RESULTS = ("appended", "unchanged", "refused", "failed")

COMMAND_SECONDS = Histogram(
    "parley_command_duration_seconds",
    "Time a chat command took in its handler (the aggregate's decision and the append), by command and adapter.",
    ["command", "adapter"],
    # A command is one INSERT, or a read and an INSERT: milliseconds, with a
    # tail when the database is busy.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
COMMANDS_TOTAL = Counter(
    "parley_commands_total",
    "Chat commands handled, by command, adapter and result (appended, unchanged, refused, failed).",
    ["command", "adapter", "result"],
)
_command_children: dict[tuple[str, str, str], tuple[Histogram, Counter]] = {}


def command_done(command: str, adapter: str, result: str, seconds: float) -> None:
    """Count one handled command and observe its latency."""
    key = (command, adapter, result)
    children = _command_children.get(key)
    if children is None:
        children = _command_children[key] = (
            COMMAND_SECONDS.labels(command, adapter),
            COMMANDS_TOTAL.labels(command, adapter, result),
        )
    children[0].observe(seconds)
    children[1].inc()


# -- consumers of the log (eventstore.runner) -------------------------------------------

CONSUMER_ERRORS = Counter(
    "parley_consumer_errors_total",
    "Batches a consumer group failed to process or whose effects failed after commit, "
    "by group (consumer) and the member that raised (member; the group's own name when no member did).",
    ["consumer", "member"],
)

# -- the database's statistics (eventstore.statistics) -------------------------------------

ANALYSES = Counter(
    "parley_db_analyses_total",
    "ANALYZE runs this process made of a table its consumer groups filled, each time the table had doubled, by table.",
    ["table"],
)

# -- the websocket (realtime) -------------------------------------------------------------

WS_CONNECTIONS = Gauge(
    "parley_websocket_connections",
    "Websockets open and registered for live frames in this process, by audience (agent, customer).",
    ["audience"],
    multiprocess_mode="livesum",
)
WS_AGENTS = WS_CONNECTIONS.labels("agent")
WS_CUSTOMERS = WS_CONNECTIONS.labels("customer")

FRAMES_SENT = Counter(
    "parley_websocket_frames_sent_total",
    "Frames sent to websockets, by source: live (the log's frames as they happen), replay (the log read "
    "for a resume), reply (acks, errors, pongs, resync, resumed), ephemeral (typing, presence).",
    ["source"],
)
FRAMES_LIVE = FRAMES_SENT.labels("live")
FRAMES_REPLAY = FRAMES_SENT.labels("replay")
FRAMES_REPLY = FRAMES_SENT.labels("reply")
FRAMES_EPHEMERAL = FRAMES_SENT.labels("ephemeral")

FRAMES_DROPPED = Counter(
    "parley_websocket_frames_dropped_total",
    "Log frames not sent to a socket as offered, by reason: buffer_full (a socket replaying the log was "
    "offered more than it holds; it reads them from the log instead), socket_failed (handing a frame to "
    "a socket raised; it is told to resync).",
    ["reason"],
)
DROPPED_BUFFER_FULL = FRAMES_DROPPED.labels("buffer_full")
DROPPED_SOCKET_FAILED = FRAMES_DROPPED.labels("socket_failed")

RESYNCS = Counter(
    "parley_websocket_resyncs_total",
    "resync frames sent: sockets the server could not vouch for, asked to resume.",
)

# -- push delivery (notifications) ----------------------------------------------------------

PUSH_OUTCOMES = ("sent", "gone", "throttled", "retry", "refused")
PUSH_REQUESTS = Counter(
    "parley_push_requests_total",
    "Requests made to push services, by what the answer meant: sent (accepted), gone (404/410: the "
    "subscription is deleted), throttled (429), retry (5xx, network, timeout), refused (any other answer).",
    ["outcome"],
)
PUSH_REQUESTS_BY_OUTCOME = {outcome: PUSH_REQUESTS.labels(outcome) for outcome in PUSH_OUTCOMES}
PUSH_STATES = ("sent", "dead", "dropped", "superseded")
PUSH_FINISHED = Counter(
    "parley_push_deliveries_finished_total",
    "Outbox rows that reached a final state: sent, dead (refused, or given up after PUSH_MAX_FAILURES), "
    "dropped (expired, message read meanwhile, badge unchanged), superseded (a newer push carries the badge).",
    ["state"],
)
PUSH_FINISHED_BY_STATE = {state: PUSH_FINISHED.labels(state) for state in PUSH_STATES}

# -- inbound webhooks (api.inbound) ----------------------------------------------------------

INBOUND = Counter(
    "parley_inbound_webhooks_total",
    "Inbound webhook deliveries by source and result: accepted, duplicate, or the error code refusing it. "
    "Sources not configured in INBOUND_WEBHOOK_SECRETS count as source=\"unknown\".",
    ["source", "result"],
)


def inbound_delivery(source: str, result: str, *, configured: bool) -> None:
    """Count one webhook delivery; an unconfigured source never becomes a label of its own."""
    INBOUND.labels(source if configured else "unknown", result).inc()


def _initialise() -> None:
    """Give the commands' usual label sets a series at zero, so a rate is defined before the
    first command (the push series are bound above, which does the same)."""
    for command in COMMANDS:
        for adapter in ("http", "websocket"):
            COMMAND_SECONDS.labels(command, adapter)
    COMMAND_SECONDS.labels("SendMessage", "webhook")


_initialise()

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    from prometheus_client import multiprocess

    # This process's live gauges (open sockets) leave the host's sum when it exits.
    atexit.register(multiprocess.mark_process_dead, os.getpid())
