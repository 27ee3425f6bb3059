"""The send budget's counter in the real cache (Redis on the services run):
counted per identity and window, refused past the limit with the wait, and
on Redis in one round trip per send (it is on every message's path)."""

from __future__ import annotations

from typing import Any

import pytest

from accounts import ratelimit
from accounts.errors import RateLimited
from accounts.sendbudget import charge_send
from tests.support import caches


@pytest.fixture
def cache_prefix(_private_cache: None, settings: Any) -> Any:
    yield from caches.real_cache(settings)


def test_the_budget_counts_per_identity_and_refuses_past_it(cache_prefix, settings):
    settings.PARLEY_CUSTOMER_SENDS_PER_MINUTE = 3
    for _ in range(3):
        charge_send("customer", "ada")
    with pytest.raises(RateLimited) as refused:
        charge_send("customer", "ada")
    assert 1 <= refused.value.retry_after <= 60
    charge_send("customer", "grace")  # another identity has its own budget
    charge_send("agent", "ada")  # and an agent of the same id too


@pytest.mark.redis
def test_on_redis_a_send_is_counted_in_one_round_trip_with_an_expiry(cache_prefix, monkeypatch):
    import redis
    from django.core.cache import cache

    assert cache_prefix is not None  # the redis mark: this run has REDIS_URL
    trips: list[int] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        trips.append(1)
        real(self, command, check_health)

    ratelimit.hit("probe", "warm", limit=10, window=60)  # the client connects outside the count
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    assert ratelimit.hit("probe", "k", limit=10, window=60).allowed
    assert ratelimit.hit("probe", "k", limit=10, window=60).allowed
    assert len(trips) == 2
    monkeypatch.undo()
    key, _, _ = ratelimit._window("probe", "k", 60)
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    full = cache.make_and_validate_key(key)
    assert int(client.get(full)) == 2
    assert 0 < client.ttl(full) <= 61  # the window's counter expires
    assert int(cache.get(key)) == 2  # and reads back through the cache API (peek)
