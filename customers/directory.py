"""The customers context's answer to "does this customer exist?" (chat's CustomerDirectory port).

Read from the customers' own table, which registration writes in the same
transaction as its event, so a customer registered a moment ago is known at
once: no waiting for a projection. A customer seen is remembered by the
process for a few seconds (most answers cost no query); an erased customer's
row is deleted, so every process stops knowing them within that time.
"""

from __future__ import annotations

import threading
import time
import uuid

from customers.models import Customer

#: Customers remembered per process (cleared and refilled past it).
REMEMBERED = 100_000
#: How long a process remembers a customer it has seen (an erasure is noticed within it).
REMEMBER_SECONDS = 5.0


class KnownCustomers:
    def __init__(self) -> None:
        self._known: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()

    def is_known(self, customer_id: uuid.UUID) -> bool:
        seen = self._known.get(customer_id)
        now = time.monotonic()
        if seen is not None and now - seen < REMEMBER_SECONDS:
            return True
        if not Customer.objects.filter(id=customer_id).exists():
            self.forget(customer_id)
            return False
        with self._lock:
            if len(self._known) >= REMEMBERED:
                self._known.clear()
            self._known[customer_id] = now
        return True

    def forget(self, customer_id: uuid.UUID) -> None:
        """Stop remembering a customer (this process erased them)."""
        with self._lock:
            self._known.pop(customer_id, None)
