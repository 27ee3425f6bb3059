"""Metrics and log format: plain Python every app may import (no Django, no domain).

``observability.metrics`` defines every metric a process counts in (so they
are documented in one place, docs/metrics.md); ``observability.exposition``
turns them into Prometheus' text format and serves them on a bind of their
own; ``observability.logs`` holds the JSON log format and the fields every
consumer error carries. What is read from the database at scrape time (a
consumer's position and lag) is collected where that data lives
(eventstore.metrics); the web processes' ``/metrics`` is api.metrics.
"""
