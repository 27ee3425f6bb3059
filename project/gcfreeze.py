"""Keep the garbage collector's full passes off the live path.

CPython's cyclic collector walks every tracked object of a process in a
full (generation 2) pass, holding the interpreter lock throughout. A web or
workers process holds a few hundred thousand objects from start-up alone
(Django, the apps, their modules and settings) that live as long as it
does, so each full pass paused it: measured under bench/realtime.py's load
(150 messages/s), `runworkers` ran one every 8 to 16 seconds, each 85 to
120 ms long, and every message in flight at that moment reached the agents
that much later: the live path's p99 was those pauses. ``gc.freeze()``
moves what exists at that point into a permanent generation the collector
no longer walks (the practice Python's documentation describes for
servers), so later full passes only walk what was made since; with it
the same run showed no pass over 15 ms in `runworkers` while measured.
Objects made later are collected as before, and frozen ones that become
garbage are simply kept, which for start-up objects is what happens anyway.
"""

from __future__ import annotations

import gc

#: Seconds after the workers start before what they loaded is frozen (their
#: consumers, folds and caches are built lazily in the first moments).
AFTER_START_SECONDS = 10.0


def freeze_startup_objects() -> int:
    """Collect once, then freeze every object that survived; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
