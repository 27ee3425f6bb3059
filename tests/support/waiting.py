"""Waiting for a condition in tests: poll it, and fail with ``what`` once ``timeout`` has passed.

A test waits for what it asserts instead of sleeping a fixed time: the
condition's timeout is patience on a loaded machine, never a speed bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], object], what: str, timeout: float = 15, step: float = 0.1) -> None:
    """Call ``check`` every ``step`` seconds until it is true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(step)
