"""The JSON log format (PARLEY_LOG_FORMAT=json) and the fields of a consumer's error.

A log collector reads one JSON object per line far more reliably than it
parses a sentence: the record's time, level, logger and message, every
field the code passed in ``extra`` (a failing consumer's ``consumer``,
``event_id`` and ``position``, say), and the traceback as one string. The
default stays the plain one-line format for a person at a terminal; the
same fields are written into the message there, so neither loses them.

Twenty lines of standard ``logging`` do this; a library would add a
dependency and options Parley does not need.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

#: Attributes every LogRecord has: whatever else a record holds came through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the
    ``extra`` fields, and ``exception``/``stack`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: a field that is not JSON (a UUID, a request) is still written, as text.
        return json.dumps(out, default=str, ensure_ascii=False)


def event_fields(consumer: str, event_id: Any, position: int | None, **more: Any) -> dict[str, Any]:
    """The structured fields of a consumer's failure on one event (for ``extra=``).

    ``event_id`` as text, so that every sink (JSON, a plain message) shows
    it the same way; ``position`` is the event's global position in the log.
    """
    return {"consumer": consumer, "event_id": None if event_id is None else str(event_id), "position": position, **more}


def mark_reported(exc: BaseException) -> None:
    """Say that ``exc`` was logged, with its traceback and what it concerns, where it was raised.

    The worker loop (workers.loop.run_forever) then logs the retry without
    printing the traceback again (eventstore.failures marks a consumer's
    failures so).
    """
    exc.parley_reported = True  # type: ignore[attr-defined]


def was_reported(exc: BaseException) -> bool:
    return bool(getattr(exc, "parley_reported", False))
