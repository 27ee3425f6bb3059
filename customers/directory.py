"""The customers context's answer to "does this customer exist?" (chat's CustomerDirectory port).

Read from the customers' own table, which registration writes in the same
transaction as its event, so a customer registered a moment ago is known at
once: no waiting for a projection. Customers are never deleted, so a
customer once seen is remembered for the life of the process and most
answers cost no query.
"""

from __future__ import annotations

import threading
import uuid

from customers.models import Customer

#: Customers remembered per process (cleared and refilled past it).
REMEMBERED = 100_000


class KnownCustomers:
    def __init__(self) -> None:
        self._known: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    def is_known(self, customer_id: uuid.UUID) -> bool:
        if customer_id in self._known:
            return True
        if not Customer.objects.filter(id=customer_id).exists():
            return False
        with self._lock:
            if len(self._known) >= REMEMBERED:
                self._known.clear()
            self._known.add(customer_id)
        return True
