"""One throttle for every way to sign in: ``POST /api/v1/auth/agent``,
``/accounts/login/`` and ``/admin/login/`` all call ``begin`` before they
check a password and tell the attempt how it ended, so a failure on one
counts on the others.

It counts *failed* sign-ins (a wrong password, an unknown username, an
inactive or, where staff are required, non-staff user) in three budgets:

* **per client address, over every username** (``ADDRESS_FREE`` = 30
  failures): stops one address from spraying many usernames;
* **per client address and username** (``PAIR_FREE`` = 10 failures, 3 while
  the account is under attack): stops guessing one agent's password;
* **per username, over every address** (``ACCOUNT_UNDER_ATTACK`` = 20
  failures): does not refuse anyone by itself; it puts the account *under
  attack*, which shrinks every address's budget on it from 10 to 3.

Past an address's or a pair's free budget, each further failure imposes a
wait before the next attempt of that address (or pair) is even checked:
30 s after the first failure over budget, doubling with each further one
(30 s, 1, 2, 4, 8 min) up to 15 min. An attempt during a wait is refused
with 429 and Retry-After, whatever the password. A budget forgets its
failures an hour after its last one (``MEMORY``). A successful sign-in
clears that address's failures on that username (not the address's own
budget, nor the account's count).

Nothing here refuses the *right* password from an address that has not
itself failed repeatedly: an attacker, however many failures they pile on
an agent's username from elsewhere, cannot lock the agent out. What they
get is a smaller budget per address and growing waits. (An attacker who
shares the agent's address, behind one NAT, shares its budget too: that is
the price of any per-address limit.)

Races: every attempt counts as a failure before its password is checked
(``begin``) and is taken back if it was not one, so a burst of simultaneous
requests gets no more checks than the budget; past the budget, an attempt
is checked only one at a time (a short-lived turn, ``cache.add``), once
the wait a failure recorded is over, and not while other attempts are in
flight with no wait recorded yet: those are the allowance's own, and one
of them failing sets the wait. Each budget counts its attempts in flight
(a counter that lives ``TURN`` seconds after the last one began, so a
process that dies mid-attempt holds nothing for long). Failures counted
under a larger allowance (before the account came under attack) set no
wait, and with nothing in flight the next attempt takes its turn: the
right password gets through.

Counters live in Django's cache (accounts.ratelimit.cache: Redis when
REDIS_URL is set, shared by every process, with per-process memory while
it is unreachable). Waits are stored as timestamps read against ``clock``,
which tests replace; the cache's own expiry only collects garbage.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from accounts import ratelimit
from accounts.errors import TooManyAttempts

log = logging.getLogger(__name__)

ADDRESS_FREE = 30  # failures per client address (any username) before waits begin
PAIR_FREE = 10  # failures per client address and username before waits begin
PAIR_FREE_UNDER_ATTACK = 3  # the same while the username is under attack
ACCOUNT_UNDER_ATTACK = 20  # failures on one username (any address) that put it under attack
FIRST_DELAY = 30  # seconds: the wait after the first failure over a free budget, doubled by each next one
MAX_DELAY = 15 * 60  # seconds: the longest wait
MEMORY = 60 * 60  # seconds after its last failure that a budget forgets its failures
TURN = 30  # seconds at most that one over-budget attempt holds its budget's turn

clock: Callable[[], float] = time.time


def delay_after(excess: int) -> int:
    """The wait, in seconds, after the ``excess``-th failure beyond a free budget (1, 2, ...)."""
    return min(FIRST_DELAY * 2 ** min(max(excess, 1) - 1, 20), MAX_DELAY)


def address_of(address: str) -> str:
    """The budget an address counts in: itself, or for IPv6 its /64 (one host's usual share)."""
    return ratelimit.address_bucket(address)


def account_of(username: str) -> str:
    """A username as the throttle knows it: Unicode-normalised, stripped, case-folded, hashed
    (``Grace`` and ``grace `` are one account; the key is short and safe in any cache)."""
    normal = unicodedata.normalize("NFKC", username).strip().casefold()
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- the cache --------------------------------------------------------------------------

_cache = ratelimit.cache
_PREFIX = "parley:login"


def _count_up(key: str) -> int:
    return _cache.increment(key, MEMORY)


def _count_down(key: str) -> None:
    try:
        _cache.decr(key)
    except ValueError:  # expired meanwhile: nothing to take back
        pass


@dataclass(frozen=True)
class _Budget:
    """One budget: a failure counter, the time its next attempt must wait for, a turn."""

    name: str  # "address", "pair" (for logs)
    key: str
    free: int

    @property
    def wait_key(self) -> str:
        return f"{self.key}:wait"

    @property
    def turn_key(self) -> str:
        return f"{self.key}:turn"

    @property
    def flight_key(self) -> str:
        return f"{self.key}:flight"

    def _take_off(self) -> int:
        """Count this attempt in flight; the number in flight, this one included."""
        flying = _cache.increment(self.flight_key, TURN)
        _cache.touch(self.flight_key, TURN)
        return flying

    def _land(self) -> None:
        _count_down(self.flight_key)

    def waiting(self, now: float) -> int:
        """Seconds still to wait before an attempt (0: none)."""
        until = float(_cache.get(self.wait_key) or 0)
        return math.ceil(until - now) if until > now else 0

    def reserve(self, now: float) -> tuple[int, bool]:
        """Count this attempt as a failure in advance. Returns (the count, whether it holds the turn);
        raises TooManyAttempts when it must wait or another over-budget attempt holds the turn."""
        wait = self.waiting(now)
        if wait:
            raise TooManyAttempts(wait)
        # In flight before counted: an attempt past the allowance that sees a count before its own
        # also sees that count's attempt in flight.
        self._take_off()
        count = _count_up(self.key)
        if count <= self.free:
            return count, False
        if _cache.get(self.wait_key) is None and int(_cache.get(self.flight_key) or 0) > 1:
            # Past the allowance, no wait recorded yet, other attempts in flight: the allowance's own
            # (none has failed so far). Nothing past the allowance is checked before they end, or a
            # simultaneous burst would get one check more than the allowance. With none in flight
            # (failures counted under a larger allowance, which set no wait) it takes its turn below.
            self.release(count, False)
            raise TooManyAttempts(1)
        # Over budget: one attempt at a time, and only once the wait, if any, is over.
        if not _cache.add(self.turn_key, 1, timeout=TURN):
            self.release(count, False)
            raise TooManyAttempts(max(1, self.waiting(now)))
        wait = self.waiting(now)  # a failure may have set a wait since it was read
        if wait:
            self.release(count, True)
            raise TooManyAttempts(wait)
        return count, True

    def release(self, count: int, turn: bool) -> None:
        """Take back a reserved attempt that was not a failure."""
        _count_down(self.key)
        self._land()
        if turn:
            _cache.delete(self.turn_key)

    def failed(self, count: int, turn: bool, now: float) -> None:
        """The reserved attempt failed: it stays counted; past the free budget the next one waits."""
        _cache.touch(self.key, MEMORY)
        if count >= self.free:
            wait = delay_after(count - self.free + 1)
            # Never shorten a wait that a later failure of a simultaneous burst has set already.
            until = max(now + wait, float(_cache.get(self.wait_key) or 0))
            _cache.set(self.wait_key, until, timeout=MEMORY + math.ceil(until - now))
            if count == self.free:
                log.warning("sign-in throttled: %s budget %s spent; waits begin", self.name, self.key)
        self._land()  # after the wait is set: an attempt that sees none in flight sees the wait
        if turn:
            _cache.delete(self.turn_key)

    def clear(self, turn: bool) -> None:
        _cache.delete_many([self.key, self.wait_key] + ([self.turn_key] if turn else []))
        self._land()


# -- the policy -------------------------------------------------------------------------


class Attempt:
    """A sign-in attempt that may go ahead: check the password, then say how it ended,
    exactly once (``succeeded``, ``failed``, or ``abandoned`` when nothing was checked)."""

    def __init__(self, address: str, account: str, account_key: str, budgets: list[tuple[_Budget, int, bool]]):
        self.address = address
        self.account = account
        self._account_key = account_key
        self._budgets = budgets
        self._ended = False

    def _end(self) -> bool:
        if self._ended:
            return False
        self._ended = True
        return True

    def succeeded(self) -> None:
        """The password was right: not a failure; this address's failures on this username are forgotten."""
        if not self._end():
            return
        for budget, count, turn in self._budgets:
            if budget.name == "pair":
                budget.clear(turn)
            else:
                budget.release(count, turn)

    def failed(self) -> None:
        """The sign-in was refused (wrong password, unknown user, not allowed): it counts everywhere."""
        if not self._end():
            return
        now = clock()
        for budget, count, turn in self._budgets:
            budget.failed(count, turn, now)
        on_account = _count_up(self._account_key)
        _cache.touch(self._account_key, MEMORY)
        if on_account == ACCOUNT_UNDER_ATTACK:
            log.warning("sign-in throttled: account %s under attack (%d failures from all addresses); "
                        "%d failures per address on it before waits", self.account, on_account,
                        PAIR_FREE_UNDER_ATTACK)

    def abandoned(self) -> None:
        """No password was checked (an error on the way): nothing counts."""
        if not self._end():
            return
        for budget, count, turn in self._budgets:
            budget.release(count, turn)


def under_attack(username: str) -> bool:
    """Whether ``username`` has failed ACCOUNT_UNDER_ATTACK times lately, from any addresses."""
    return int(_cache.get(f"{_PREFIX}:account:{account_of(username)}") or 0) >= ACCOUNT_UNDER_ATTACK


def begin(address: str, username: str) -> Attempt:
    """Let a sign-in of ``username`` from client ``address`` check its password, or raise
    TooManyAttempts (429, with the seconds to wait) when its address, or its address on this
    username, must wait first."""
    bucket, account = address_of(address), account_of(username)
    account_key = f"{_PREFIX}:account:{account}"
    pair_free = PAIR_FREE_UNDER_ATTACK if under_attack(username) else PAIR_FREE
    now = clock()
    budgets = [
        _Budget("address", f"{_PREFIX}:address:{bucket}", ADDRESS_FREE),
        _Budget("pair", f"{_PREFIX}:pair:{bucket}:{account}", pair_free),
    ]
    reserved: list[tuple[_Budget, int, bool]] = []
    try:
        for budget in budgets:
            count, turn = budget.reserve(now)
            reserved.append((budget, count, turn))
    except TooManyAttempts:
        for budget, count, turn in reserved:
            budget.release(count, turn)
        raise
    return Attempt(bucket, account, account_key, reserved)
