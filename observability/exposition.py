"""Turning the metrics into Prometheus' exposition format, and serving them on a bind.

Each process answers for itself by default: a web process through its
``/metrics`` (api.metrics, behind PARLEY_METRICS_KEY), ``runworkers``
through a server of prometheus_client's own on PARLEY_METRICS_BIND. Scrape
every process.

Optionally (``PROMETHEUS_MULTIPROC_DIR``, prometheus_client's multiprocess
mode) the processes of one host write their values to files in that
directory, and any of them answers with the sum over all of them; then
scrape one process per host. The directory must exist, be shared by the
host's Parley processes only, and be emptied when they are all restarted.
In that mode prometheus_client's per-process ``process_*`` and ``python_*``
metrics are not reported.

What is read from the database at scrape time (a consumer's lag) is passed
in as a collector, whichever mode: it is the same for every process.
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import REGISTRY, Collector


def multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR, or "" when each process answers for itself."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry(*collectors: Collector) -> CollectorRegistry:
    """What a scrape of this process reports: its own metrics (or the host's,
    in multiprocess mode), then ``collectors``."""
    found = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(found)
    else:
        # The default registry is a collector itself: every metric of
        # observability.metrics, and prometheus_client's process metrics.
        found.register(REGISTRY)
    for collector in collectors:
        found.register(collector)
    return found


def render(source: Collector, accept: str = "") -> tuple[bytes, str]:
    """The exposition of ``source`` and its content type, in the format ``accept`` asks for
    (OpenMetrics if Prometheus asks for it, else the text format)."""
    encode, content_type = choose_encoder(accept)
    return encode(source), content_type


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"PARLEY_METRICS_BIND must be host:port, not {bind!r}")
    return host.strip("[]"), int(port)


def serve(bind: str, source: Collector) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``source`` on ``bind`` (host:port) from a daemon thread; returns the server
    (``shutdown()`` stops it) and its thread.

    Any path answers; each scrape runs on a thread of its own.
    """
    host, port = parse_bind(bind)
    return start_http_server(port, host, registry=source)

