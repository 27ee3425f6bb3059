"""One throttle on every sign-in (accounts.throttle): the API's
``POST /api/v1/auth/agent``, ``/accounts/login/`` and ``/admin/login/``.

Counted in the real cache: per-test local memory on the SQLite run, Redis
(under a key prefix of this test's own) when REDIS_URL is set. Waits are
read against ``accounts.throttle.clock``, which the tests move by hand:
nothing here sleeps or measures time.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

from accounts import throttle
from accounts.errors import TooManyAttempts
from tests.support import caches

pytestmark = pytest.mark.django_db

FORMS = ["/accounts/login/", "/admin/login/"]
ATTACKER, AGENT_HOME = "203.0.113.7", "198.51.100.20"
PASSWORD = "pw-grace-123"


@pytest.fixture(autouse=True)
def real_cache(_private_cache: None, settings: Any) -> Any:
    """Redis when the run has one (a prefix of this test's own, removed after), else local memory."""
    yield from caches.real_cache(settings)


@pytest.fixture(autouse=True)
def fast_hashing(settings: Any) -> None:
    """Hundreds of password checks: the test's users get a cheap hash (what is counted is the same)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(throttle, "clock", fake)
    return fake


@pytest.fixture
def grace(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("grace", password=PASSWORD, is_staff=True)


_browser: list[Client] = []


@pytest.fixture(autouse=True)
def browser() -> Any:
    """One test client per test (each new one loads the middleware again), its cookies emptied per request."""
    _browser[:] = [Client()]
    yield
    _browser.clear()


def _fresh() -> Client:
    client = _browser[0]
    client.cookies.clear()
    return client


def form_login(path: str, username: str, password: str, address: str) -> Any:
    client = _fresh()
    response = client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)
    response.signed_in = SESSION_KEY in client.session
    return response


def api_login(username: str, password: str, address: str) -> Any:
    return _fresh().post("/api/v1/auth/agent", json.dumps({"username": username, "password": password}),
                         content_type="application/json", REMOTE_ADDR=address)


def login(way: str, username: str, password: str, address: str) -> Any:
    return api_login(username, password, address) if way == "api" else form_login(way, username, password, address)


def refused(response: Any) -> bool:
    """A 429 with a Retry-After; the API's in its error shape, a form's with a message on the page."""
    if response.status_code != 429:
        return False
    assert int(response["Retry-After"]) >= 1
    if response["Content-Type"].startswith("application/json"):
        assert response.json()["error"]["code"] == "too_many_attempts"
        assert response["Retry-After"] in response.json()["error"]["detail"]
    else:
        assert "Too many failed sign-in attempts" in response.content.decode()
    return True


def wrong(response: Any) -> bool:
    """A sign-in refused for its credentials, the password checked: 401 from the API, the form again."""
    return response.status_code in (401, 200) and not getattr(response, "signed_in", False)


def signed_in(response: Any) -> bool:
    if response.status_code == 201:
        return response.json()["token"].startswith("pa_")
    return response.status_code == 302 and response.signed_in


# -- the browser forms -----------------------------------------------------------------


@pytest.mark.parametrize("path", FORMS)
def test_fifty_wrong_passwords_on_a_form_are_throttled_but_the_agent_elsewhere_signs_in(grace, path):
    answers = [form_login(path, "grace", f"guess-{i}", ATTACKER) for i in range(50)]
    assert all(wrong(r) for r in answers[:10])
    assert all(refused(r) for r in answers[10:])
    assert answers[10]["Retry-After"] == str(throttle.FIRST_DELAY)
    assert "Please wait 30 seconds" in answers[10].content.decode()

    # The right password from the attacker's address waits too: it is not even checked...
    assert refused(form_login(path, "grace", PASSWORD, ATTACKER))
    # ...but the agent, from an address that has not failed, is not locked out.
    assert signed_in(form_login(path, "grace", PASSWORD, AGENT_HOME))


def test_the_login_page_keeps_the_username_and_says_how_long_to_wait(grace, clock):
    for i in range(10):
        form_login("/accounts/login/", "grace", "nope", ATTACKER)
    clock.advance(throttle.FIRST_DELAY)
    form_login("/accounts/login/", "grace", "nope", ATTACKER)  # the 11th: the next waits 60 s
    page = form_login("/accounts/login/", "grace", PASSWORD, ATTACKER)
    assert page.status_code == 429 and page["Retry-After"] == "60"
    html = page.content.decode()
    assert "Please wait 1 minute, then try again." in html
    assert "do not match" not in html
    assert 'value="grace"' in html


def test_a_form_without_a_password_checks_nothing_and_counts_nothing(grace):
    for _ in range(40):
        assert form_login("/accounts/login/", "grace", "", ATTACKER).status_code == 200
    assert signed_in(form_login("/accounts/login/", "grace", PASSWORD, ATTACKER))


def test_the_admin_form_counts_a_non_staff_sign_in_as_a_failure(django_user_model):
    django_user_model.objects.create_user("mallory", password="pw-mallory-123", is_staff=False)
    answers = [form_login("/admin/login/", "mallory", "pw-mallory-123", ATTACKER) for _ in range(11)]
    assert all(wrong(r) for r in answers[:10]) and refused(answers[10])


# -- one budget on every way in --------------------------------------------------------


def test_the_api_and_the_forms_share_one_budget(grace):
    ways = ["/accounts/login/", "/admin/login/", "api"]
    # Ten failures spread over the three ways in, from one address, on one username...
    assert all(wrong(login(ways[i % 3], "grace", "nope", ATTACKER)) for i in range(10))
    # ...and each of them now makes that address wait, the right password included.
    for way in ways:
        assert refused(login(way, "grace", PASSWORD, ATTACKER))
    # The other way round: failures on the API make a form wait.
    other = "192.0.2.99"
    assert all(wrong(api_login("grace", "nope", other)) for _ in range(10))
    assert refused(form_login("/accounts/login/", "grace", PASSWORD, other))
    assert refused(form_login("/admin/login/", "grace", PASSWORD, other))
    for way in ways:
        assert signed_in(login(way, "grace", PASSWORD, AGENT_HOME))


@pytest.mark.parametrize("way", ["api", "/accounts/login/"])
def test_fifty_usernames_from_one_address_are_limited(grace, way):
    answers = [login(way, f"user{i}", "password1", ATTACKER) for i in range(50)]
    assert all(wrong(r) for r in answers[: throttle.ADDRESS_FREE])
    assert all(refused(r) for r in answers[throttle.ADDRESS_FREE:])
    # The address waits on every username, the right password included; other addresses do not.
    assert refused(login(way, "grace", PASSWORD, ATTACKER))
    assert refused(login("/admin/login/", "someone-new", "x", ATTACKER))
    assert signed_in(login(way, "grace", PASSWORD, AGENT_HOME))


def test_an_ipv6_client_counts_by_its_64(grace):
    for i in range(10):
        assert wrong(api_login("grace", "nope", f"2001:db8:1:2::{i + 1:x}"))
    assert refused(api_login("grace", PASSWORD, "2001:db8:1:2:ffff::1"))  # same /64
    assert signed_in(api_login("grace", PASSWORD, "2001:db8:1:3::1"))  # another /64


def test_a_username_counts_however_it_is_spelled(grace):
    for spelling in ["grace", "Grace", "GRACE", " grace", "ｇｒａｃｅ"] * 2:  # the last one full-width
        assert wrong(api_login(spelling, "nope", ATTACKER))
    assert refused(api_login("grace", PASSWORD, ATTACKER))


# -- waits grow, then end --------------------------------------------------------------


def test_waits_double_per_failure_and_the_right_password_after_a_wait_signs_in(grace, clock):
    for _ in range(10):
        assert wrong(api_login("grace", "nope", ATTACKER))
    expected = [30, 60, 120, 240, 480, 900, 900]
    for wait in expected:
        r = api_login("grace", PASSWORD, ATTACKER)
        assert refused(r) and int(r["Retry-After"]) == wait
        clock.advance(wait - 1)
        assert refused(r := api_login("grace", PASSWORD, ATTACKER)) and r["Retry-After"] == "1"
        clock.advance(1)
        assert wrong(api_login("grace", "nope", ATTACKER))  # one attempt checked per wait
    assert [throttle.delay_after(n) for n in range(1, 8)] == expected

    clock.advance(900)
    assert signed_in(api_login("grace", PASSWORD, ATTACKER))
    # A sign-in clears that address's failures on that username: a typo is a typo again.
    assert wrong(api_login("grace", "nope", ATTACKER))
    assert signed_in(api_login("grace", PASSWORD, ATTACKER))


# -- an account under attack from many addresses ---------------------------------------


def test_an_account_attacked_from_many_addresses_slows_every_attacker_and_locks_out_no_one(grace, clock):
    attackers = [f"203.0.113.{n}" for n in range(1, 3)]
    for address in attackers:  # 2 x 10 failures: the account is under attack
        assert all(wrong(login(FORMS[0], "grace", "nope", address)) for _ in range(10))
    assert throttle.under_attack("grace") and not throttle.under_attack("ada")

    # A fresh attacking address now gets 3 failures, not 10, before it waits.
    fresh = [api_login("grace", f"guess-{i}", "203.0.113.50") for i in range(10)]
    assert all(wrong(r) for r in fresh[:3]) and all(refused(r) for r in fresh[3:])
    # Other usernames keep their budget of 10.
    assert all(wrong(api_login("ada", "nope", "203.0.113.51")) for _ in range(10))

    # The agent, from an address that has not failed repeatedly, signs in: two typos are fine.
    assert wrong(form_login("/accounts/login/", "grace", "typo", AGENT_HOME))
    assert wrong(form_login("/accounts/login/", "grace", "typo", AGENT_HOME))
    assert signed_in(form_login("/accounts/login/", "grace", PASSWORD, AGENT_HOME))
    assert signed_in(api_login("grace", PASSWORD, "192.0.2.1"))
    assert signed_in(form_login("/admin/login/", "grace", PASSWORD, "192.0.2.2"))

    # A third typo makes even the agent's address wait, for 30 s: slowed, not locked out.
    for _ in range(3):
        assert wrong(form_login("/accounts/login/", "grace", "typo", AGENT_HOME))
    assert refused(r := form_login("/accounts/login/", "grace", PASSWORD, AGENT_HOME))
    assert r["Retry-After"] == "30"
    clock.advance(30)
    assert signed_in(form_login("/accounts/login/", "grace", PASSWORD, AGENT_HOME))


def test_an_agent_with_typos_from_before_the_attack_is_not_locked_out_when_the_account_comes_under_attack(
        grace, clock):
    """Five typos were within the allowance of 10 and set no wait; the attack cuts it to 3. The
    agent's address is now past its allowance with no wait recorded and nothing in flight: its next
    attempt is checked (one at a time), not refused until the typos are forgotten an hour later."""
    for _ in range(5):
        assert wrong(api_login("grace", "typo", AGENT_HOME))
    for n in range(throttle.ACCOUNT_UNDER_ATTACK):  # an attacker fails on the username from elsewhere
        assert wrong(api_login("grace", "nope", f"203.0.113.{n + 1}"))
    assert throttle.under_attack("grace")

    clock.advance(60)
    assert signed_in(api_login("grace", PASSWORD, AGENT_HOME))

    # Past the smaller allowance, a wrong password now records a wait, as any failure over budget does.
    for _ in range(throttle.PAIR_FREE_UNDER_ATTACK):
        assert wrong(api_login("grace", "typo", AGENT_HOME))
    assert refused(r := api_login("grace", PASSWORD, AGENT_HOME)) and r["Retry-After"] == "30"


# -- simultaneous attempts -------------------------------------------------------------


def test_a_burst_of_simultaneous_attempts_gets_no_more_checks_than_the_budget():
    """Attempts in flight at once (begun, not yet ended) each hold a place in the budget."""
    started, refusals = [], 0
    for _ in range(50):
        try:
            started.append(throttle.begin(ATTACKER, "grace"))
        except TooManyAttempts:
            refusals += 1
    assert len(started) == throttle.PAIR_FREE  # exactly the allowance: nothing past it until a failure sets a wait
    assert refusals == 50 - len(started)
    for attempt in started:
        attempt.failed()
    with pytest.raises(TooManyAttempts):
        throttle.begin(ATTACKER, "grace")


def test_thirty_wrong_passwords_at_once_from_real_threads_get_exactly_the_allowance_of_checks(clock):
    """30 threads released together; each that may go ahead holds its attempt open until
    every thread has asked, so all of them are in flight at once, then fails it."""
    import threading

    threads_n = 30
    asked, lock, all_asked = [0], threading.Lock(), threading.Event()
    gate = threading.Barrier(threads_n)
    checks: list[int] = []
    refused: list[int] = []

    def one(i: int) -> None:
        gate.wait()
        try:
            attempt = throttle.begin(ATTACKER, "grace")
        except TooManyAttempts:
            attempt = None
        with lock:
            asked[0] += 1
            (checks if attempt is not None else refused).append(i)
            if asked[0] == threads_n:
                all_asked.set()
        if attempt is not None:
            all_asked.wait(30)
            attempt.failed()  # a wrong password

    threads = [threading.Thread(target=one, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert (len(checks), len(refused)) == (throttle.PAIR_FREE, threads_n - throttle.PAIR_FREE)
    with pytest.raises(TooManyAttempts):  # and the next one waits
        throttle.begin(ATTACKER, "grace")
    clock.advance(throttle.FIRST_DELAY + 1)
    throttle.begin(ATTACKER, "grace").failed()  # after the wait: one more check, one at a time


def test_an_abandoned_attempt_gives_its_place_back():
    """An attempt that checked no password (an error on the way) counts for nothing."""
    for _ in range(50):
        throttle.begin(ATTACKER, "grace").abandoned()
    for _ in range(throttle.PAIR_FREE):
        attempt = throttle.begin(ATTACKER, "grace")
        attempt.failed()
        attempt.abandoned()  # an attempt ends once: this is ignored
    with pytest.raises(TooManyAttempts):
        throttle.begin(ATTACKER, "grace")


@pytest.mark.parametrize("path", FORMS)
def test_a_browser_with_csrf_checks_is_throttled_the_same_and_a_forged_post_counts_nothing(grace, path):
    import re

    browser = Client(enforce_csrf_checks=True)
    for _ in range(20):  # no CSRF token: refused before any password is checked
        assert browser.post(path, {"username": "grace", "password": "nope"}, REMOTE_ADDR=ATTACKER).status_code == 403
    page = browser.get(path, REMOTE_ADDR=ATTACKER)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    form = {"csrfmiddlewaretoken": token, "username": "grace"}
    answers = [browser.post(path, {**form, "password": "nope"}, REMOTE_ADDR=ATTACKER) for _ in range(11)]
    assert [r.status_code for r in answers] == [200] * 10 + [429]
    assert refused(answers[10])
    assert refused(browser.post(path, {**form, "password": PASSWORD}, REMOTE_ADDR=ATTACKER))
    assert browser.post(path, {**form, "password": PASSWORD}, REMOTE_ADDR=AGENT_HOME).status_code == 302
