"""What chat needs from the rest of the system, as ports the composition root fills.

Chat decides about messages; whether a customer exists is the customers
context's business. The rule "agents write only to customers that exist"
needs that answer at write time, so chat asks through ``CustomerDirectory``,
an interface it owns. The composition root (project.apps) installs the
implementation at start-up; chat never imports the customers context.
"""

from __future__ import annotations

import uuid
from typing import Protocol


class CustomerDirectory(Protocol):
    def is_known(self, customer_id: uuid.UUID) -> bool:
        """Whether this customer exists (registered, now or earlier)."""


_directory: CustomerDirectory | None = None


def install(directory: CustomerDirectory) -> None:
    global _directory
    _directory = directory


def customer_directory() -> CustomerDirectory:
    if _directory is None:
        raise RuntimeError("no customer directory installed: project.apps installs one when Django starts")
    return _directory
