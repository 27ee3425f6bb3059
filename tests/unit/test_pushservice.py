"""The local push service is a real RFC 8030/8291/8292 peer.

Everything here talks to it with the same client the application uses,
``pywebpush.webpush``, or with hand-built requests where pywebpush cannot be
made to misbehave.  No Django settings or database are needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from py_vapid import jwt as vapid_jwt
from pywebpush import WebPusher, WebPushException, webpush

from tests.support.pushservice import (
    MAX_PLAINTEXT_SIZE,
    PushService,
    Subscription,
    b64url_decode,
    b64url_encode,
)

SUB_CLAIM = "mailto:ops@example.com"


@pytest.fixture
def push() -> Iterator[PushService]:
    with PushService() as service:
        yield service


def make_vapid() -> Vapid:
    vapid = Vapid()
    vapid.generate_keys()
    return vapid


@pytest.fixture
def vapid() -> Vapid:
    return make_vapid()


def public_key_b64(vapid: Vapid) -> str:
    return b64url_encode(
        vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def send(
    subscription: Subscription | dict[str, Any],
    data: str | None,
    vapid: Vapid | str,
    **kwargs: Any,
) -> requests.Response:
    """Send like the application does; raises WebPushException on status > 202."""
    info = subscription.to_json() if isinstance(subscription, Subscription) else subscription
    kwargs.setdefault("ttl", 60)
    kwargs.setdefault("timeout", 5)
    # pywebpush writes aud/exp into the claims dict, so always pass a fresh one.
    return webpush(
        info, data, vapid_private_key=vapid, vapid_claims={"sub": SUB_CLAIM}, **kwargs
    )


def refused(call: Callable[[], object]) -> WebPushException:
    with pytest.raises(WebPushException) as excinfo:
        call()
    assert excinfo.value.response is not None
    return excinfo.value


def vapid_headers(
    push: PushService,
    signer: Vapid,
    *,
    advertised: Vapid | None = None,
    **claims: Any,
) -> dict[str, str]:
    """An Authorization header built by hand (pywebpush 'fixes' bad claims)."""
    full_claims = {"aud": push.base_url, "exp": int(time.time()) + 3600, "sub": SUB_CLAIM}
    full_claims.update(claims)
    full_claims = {k: v for k, v in full_claims.items() if v is not None}
    token = vapid_jwt.sign(full_claims, signer.private_key)
    key = public_key_b64(advertised or signer)
    return {"Authorization": f"vapid t={token}, k={key}"}


def raw_post(
    subscription: Subscription, headers: dict[str, str], body: bytes, url: str | None = None
) -> requests.Response:
    return requests.post(url or subscription.endpoint, data=body, headers=headers, timeout=5)


def encrypt_for(subscription: Subscription, plaintext: bytes) -> bytes:
    return WebPusher(subscription.to_json()).encode(plaintext)["body"]


# -- the happy path -----------------------------------------------------------


def test_subscription_json_has_the_browser_shape(push: PushService) -> None:
    sub = push.new_subscription()
    data = sub.to_json()

    assert data["endpoint"] == f"{push.base_url}/push/{sub.id}"
    assert push.base_url.startswith("http://127.0.0.1:")
    assert set(data["keys"]) == {"p256dh", "auth"}
    for value in data["keys"].values():
        assert "=" not in value and "+" not in value and "/" not in value
    point = b64url_decode(data["keys"]["p256dh"])
    assert len(point) == 65 and point[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert len(b64url_decode(data["keys"]["auth"])) == 16
    assert push.new_subscription().to_json()["keys"] != data["keys"]


def test_pywebpush_message_is_decrypted_with_headers(
    push: PushService, vapid: Vapid
) -> None:
    sub = push.new_subscription()
    message = {"conversation": 42, "preview": "héllo ✓", "unread": 3}

    response = send(
        sub, json.dumps(message), vapid, ttl=120, headers={"Urgency": "high", "Topic": "conv-42"}
    )

    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{push.base_url}/m/")
    [delivery] = push.wait_for(1)
    assert delivery.subscription_id == sub.id
    assert delivery.json() == message
    assert delivery.ttl == 120
    assert delivery.urgency == "high"
    assert delivery.topic == "conv-42"
    assert delivery.vapid_key == public_key_b64(vapid)
    assert delivery.vapid_claims["sub"] == SUB_CLAIM
    assert delivery.vapid_claims["aud"] == push.base_url
    assert response.headers["Location"].endswith(delivery.message_id)
    assert abs(delivery.received_at - time.time()) < 5
    assert push.requests == 1


def test_private_key_may_be_given_as_base64url_der_or_raw_string(
    push: PushService, vapid: Vapid
) -> None:
    sub = push.new_subscription()
    der = b64url_encode(
        vapid.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    raw = b64url_encode(vapid.private_key.private_numbers().private_value.to_bytes(32, "big"))

    assert send(sub, '{"n": 1}', der).status_code == 201
    assert send(sub, '{"n": 2}', raw).status_code == 201

    deliveries = push.wait_for(2)
    assert [d.json()["n"] for d in deliveries] == [1, 2]
    assert {d.vapid_key for d in deliveries} == {public_key_b64(vapid)}


def test_deliveries_are_kept_per_subscription_in_order(
    push: PushService, vapid: Vapid
) -> None:
    first, second = push.new_subscription(), push.new_subscription()
    send(first, '"a1"', vapid)
    send(second, '"b1"', vapid)
    send(first, '"a2"', vapid)

    assert [d.json() for d in push.deliveries()] == ["a1", "b1", "a2"]
    assert [d.json() for d in push.deliveries(first.id)] == ["a1", "a2"]
    assert [d.json() for d in second.deliveries()] == ["b1"]
    assert [d.urgency for d in push.deliveries()] == [None, None, None]
    assert [d.json() for d in push.wait_for(2, subscription_id=first.id)] == ["a1", "a2"]


def test_push_without_payload_is_accepted(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    assert send(sub, None, vapid).status_code == 201
    [delivery] = push.wait_for(1)
    assert delivery.payload == b""
    assert "content-encoding" not in delivery.headers


def test_wait_for_times_out(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    send(sub, '"only one"', vapid)
    with pytest.raises(TimeoutError, match="expected 2 deliveries"):
        push.wait_for(2, timeout=0.2)
    with pytest.raises(TimeoutError):
        push.wait_for(1, timeout=0.1, subscription_id=push.new_subscription().id)


# -- RFC 8030 routing and headers --------------------------------------------


def test_unknown_subscription_is_404(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    info = sub.to_json()
    info["endpoint"] = f"{push.base_url}/push/no-such-subscription"

    error = refused(lambda: send(info, '"hello"', vapid))

    assert error.status_code == 404
    assert push.deliveries() == []
    assert push.requests == 1
    assert push.rejections()[0].status == 404


def test_missing_ttl_is_400(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    body = encrypt_for(sub, b'{"x": 1}')
    headers = {**vapid_headers(push, vapid), "Content-Encoding": "aes128gcm"}

    response = raw_post(sub, headers, body)
    assert response.status_code == 400
    assert "TTL" in response.json()["message"]
    assert push.deliveries() == []

    # The very same request with a TTL is accepted.
    assert raw_post(sub, {**headers, "TTL": "30"}, body).status_code == 201
    assert push.wait_for(1)[0].json() == {"x": 1}


@pytest.mark.parametrize("ttl", ["soon", "-1", "1.5", ""])
def test_non_integer_ttl_is_400(push: PushService, vapid: Vapid, ttl: str) -> None:
    sub = push.new_subscription()
    # With ttl=0 pywebpush keeps a TTL given in headers.
    error = refused(lambda: send(sub, '"x"', vapid, ttl=0, headers={"TTL": ttl}))
    assert error.status_code == 400
    assert push.deliveries() == []


def test_ttl_zero_is_allowed(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    assert send(sub, '"now or never"', vapid, ttl=0).status_code == 201
    assert push.wait_for(1)[0].ttl == 0


@pytest.mark.parametrize("topic", ["not valid!", "a" * 33, "dots.not.allowed", ""])
def test_invalid_topic_is_400(push: PushService, vapid: Vapid, topic: str) -> None:
    sub = push.new_subscription()
    error = refused(lambda: send(sub, '"x"', vapid, headers={"Topic": topic}))
    assert error.status_code == 400
    assert push.deliveries() == []


def test_topic_of_32_urlsafe_characters_is_accepted(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    topic = "Az09_-" + "x" * 26
    assert send(sub, '"x"', vapid, headers={"Topic": topic}).status_code == 201
    assert push.wait_for(1)[0].topic == topic


def test_invalid_urgency_is_400(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    error = refused(lambda: send(sub, '"x"', vapid, headers={"Urgency": "urgent"}))
    assert error.status_code == 400
    assert send(sub, '"x"', vapid, headers={"Urgency": "very-low"}).status_code == 201
    assert push.wait_for(1)[0].urgency == "very-low"


# -- RFC 8292 VAPID ----------------------------------------------------------


def test_missing_authorization_is_401(push: PushService) -> None:
    sub = push.new_subscription()
    error = refused(lambda: webpush(sub.to_json(), '"x"', ttl=60, timeout=5))
    assert error.status_code == 401
    assert error.response.headers["WWW-Authenticate"] == "vapid"
    assert push.deliveries() == []


def test_hand_built_header_is_accepted_as_control(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    response = send(sub, '"x"', vapid, headers=vapid_headers(push, vapid))
    # send() also signs; check the hand-built header alone is valid too.
    assert response.status_code == 201
    alone = webpush(sub.to_json(), '"y"', headers=vapid_headers(push, vapid), ttl=60, timeout=5)
    assert alone.status_code == 201
    assert [d.json() for d in push.wait_for(2)] == ["x", "y"]


def test_signature_by_another_key_is_401(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    headers = vapid_headers(push, make_vapid(), advertised=vapid)
    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401
    assert "signature" in error.response.json()["message"]
    assert push.deliveries() == []


def test_tampered_claims_are_401(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    headers = vapid_headers(push, vapid, sub="mailto:someone-else@example.com")
    token, _, key = headers["Authorization"].removeprefix("vapid t=").partition(", k=")
    header_b64, _, signature = token.split(".")
    forged = b64url_encode(
        json.dumps(
            {"aud": push.base_url, "exp": int(time.time()) + 3600, "sub": SUB_CLAIM}
        ).encode()
    )
    headers = {"Authorization": f"vapid t={header_b64}.{forged}.{signature}, k={key}"}
    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401


def test_der_encoded_jwt_signature_is_401(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    claims = {"aud": push.base_url, "exp": int(time.time()) + 3600, "sub": SUB_CLAIM}
    signing_input = (
        b64url_encode(b'{"typ":"JWT","alg":"ES256"}')
        + "."
        + b64url_encode(json.dumps(claims).encode())
    )
    der = vapid.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    token = f"{signing_input}.{b64url_encode(der)}"
    headers = {"Authorization": f"vapid t={token}, k={public_key_b64(vapid)}"}

    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401
    assert "DER" in error.response.json()["message"]


@pytest.mark.parametrize(
    "aud",
    [
        "https://push.example.net",
        "http://localhost",  # right host, wrong origin
        "https://127.0.0.1",
    ],
)
def test_wrong_audience_is_401(push: PushService, vapid: Vapid, aud: str) -> None:
    sub = push.new_subscription()
    error = refused(
        lambda: webpush(
            sub.to_json(),
            '"x"',
            vapid_private_key=vapid,
            vapid_claims={"sub": SUB_CLAIM, "aud": aud},
            ttl=60,
            timeout=5,
        )
    )
    assert error.status_code == 401
    assert "aud" in error.response.json()["message"]


def test_audience_with_another_port_is_401(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    port = int(push.base_url.rsplit(":", 1)[1])
    headers = vapid_headers(push, vapid, aud=f"http://127.0.0.1:{port + 1}")
    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401


@pytest.mark.parametrize(
    ("exp_offset", "reason"),
    [(-60, "expired"), (25 * 3600, "24 hours"), (None, "exp")],
)
def test_bad_expiry_is_401(
    push: PushService, vapid: Vapid, exp_offset: int | None, reason: str
) -> None:
    sub = push.new_subscription()
    exp = None if exp_offset is None else int(time.time()) + exp_offset
    headers = vapid_headers(push, vapid, exp=exp)
    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401
    assert reason in error.response.json()["message"]


@pytest.mark.parametrize("sub_claim", ["ops@example.com", "http://example.com", None])
def test_bad_sub_claim_is_401(push: PushService, vapid: Vapid, sub_claim: str | None) -> None:
    sub = push.new_subscription()
    headers = vapid_headers(push, vapid, sub=sub_claim)
    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401
    assert "sub" in error.response.json()["message"]


def test_https_sub_claim_is_accepted(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    headers = vapid_headers(push, vapid, sub="https://parley.example.com")
    assert webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5).status_code == 201


def test_legacy_webpush_scheme_is_401(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    token = vapid_headers(push, vapid)["Authorization"].split(" ")[1].removeprefix("t=")
    headers = {"Authorization": f"WebPush {token.rstrip(',')}"}
    error = refused(lambda: webpush(sub.to_json(), '"x"', headers=headers, ttl=60, timeout=5))
    assert error.status_code == 401


def test_expected_vapid_key_rejects_other_keys_with_403(vapid: Vapid) -> None:
    with PushService(expected_vapid_key=public_key_b64(vapid)) as push:
        sub = push.new_subscription()
        error = refused(lambda: send(sub, '"x"', make_vapid()))
        assert error.status_code == 403
        assert send(sub, '"ok"', vapid).status_code == 201
        assert [d.json() for d in push.wait_for(1)] == ["ok"]


def test_subscription_bound_to_application_server_key(push: PushService, vapid: Vapid) -> None:
    bound = push.new_subscription(application_server_key=vapid.public_key)
    free = push.new_subscription()
    other = make_vapid()
    assert refused(lambda: send(bound, '"x"', other)).status_code == 403
    assert send(free, '"x"', other).status_code == 201
    assert send(bound, '"x"', vapid).status_code == 201


# -- RFC 8291 encryption -----------------------------------------------------


def test_legacy_aesgcm_encoding_is_415(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    error = refused(lambda: send(sub, '"x"', vapid, content_encoding="aesgcm"))
    assert error.status_code == 415
    assert push.deliveries() == []


def test_payload_up_to_the_limit_is_accepted_and_one_more_byte_is_413(
    push: PushService, vapid: Vapid
) -> None:
    sub = push.new_subscription()
    assert MAX_PLAINTEXT_SIZE == 3993
    fits = "x" * MAX_PLAINTEXT_SIZE
    assert send(sub, fits, vapid).status_code == 201
    assert push.wait_for(1)[0].text() == fits

    error = refused(lambda: send(sub, fits + "x", vapid))
    assert error.status_code == 413
    assert len(push.deliveries()) == 1


def test_payload_encrypted_for_another_subscription_is_400(
    push: PushService, vapid: Vapid
) -> None:
    alice, bob = push.new_subscription(), push.new_subscription()
    info = alice.to_json()
    info["endpoint"] = bob.endpoint  # Alice's keys, Bob's endpoint

    error = refused(lambda: send(info, '"for alice"', vapid))

    assert error.status_code == 400
    assert "decrypt" in error.response.json()["message"]
    assert push.deliveries() == []


def test_wrong_auth_secret_is_400(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    info = sub.to_json()
    info["keys"]["auth"] = b64url_encode(bytes(16))
    assert refused(lambda: send(info, '"x"', vapid)).status_code == 400


def test_corrupted_ciphertext_is_400(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    body = bytearray(encrypt_for(sub, b'{"x": 1}'))
    body[-1] ^= 1
    headers = {**vapid_headers(push, vapid), "Content-Encoding": "aes128gcm", "TTL": "60"}
    assert raw_post(sub, headers, bytes(body)).status_code == 400
    assert raw_post(sub, headers, encrypt_for(sub, b'{"x": 1}')).status_code == 201


# -- scripted failures, delay, lifecycle -------------------------------------


def test_scripted_410_then_normal_delivery(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    sub.fail_next(410)

    assert refused(lambda: send(sub, '"lost"', vapid)).status_code == 410
    assert send(sub, '"kept"', vapid).status_code == 201
    assert [d.json() for d in push.deliveries()] == ["kept"]
    assert push.requests == 2


def test_scripted_429_carries_retry_after(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    sub.fail_next(429, retry_after=120)
    sub.fail_next(503, retry_after="Wed, 21 Oct 2037 07:28:00 GMT")

    first = refused(lambda: send(sub, '"x"', vapid))
    assert first.status_code == 429
    assert first.retry_after == "120"
    second = refused(lambda: send(sub, '"x"', vapid))
    assert second.status_code == 503
    assert second.retry_after == "Wed, 21 Oct 2037 07:28:00 GMT"
    assert push.deliveries() == []


def test_scripted_500_repeats_then_recovers(push: PushService, vapid: Vapid) -> None:
    sub = push.new_subscription()
    sub.fail_next(500, times=2)

    errors = [refused(lambda: send(sub, '"x"', vapid)) for _ in range(2)]
    assert [e.status_code for e in errors] == [500, 500]
    assert [e.retry_after for e in errors] == [None, None]
    assert send(sub, '"x"', vapid).status_code == 201
    assert [d.json() for d in push.wait_for(1)] == ["x"]
    assert push.requests == 3
    assert [r.status for r in push.rejections(sub.id)] == [500, 500]


def test_scripted_failure_is_only_consumed_by_a_valid_request(
    push: PushService, vapid: Vapid
) -> None:
    sub = push.new_subscription()
    sub.fail_next(503)

    unauthenticated = refused(lambda: webpush(sub.to_json(), '"x"', ttl=60, timeout=5))
    assert unauthenticated.status_code == 401
    assert refused(lambda: send(sub, '"x"', vapid)).status_code == 503
    assert send(sub, '"x"', vapid).status_code == 201


def test_scripted_failures_are_per_subscription(push: PushService, vapid: Vapid) -> None:
    failing, healthy = push.new_subscription(), push.new_subscription()
    failing.fail_next(500)
    assert send(healthy, '"x"', vapid).status_code == 201
    assert refused(lambda: send(failing, '"x"', vapid)).status_code == 500


def test_gone_subscription_answers_410_forever(push: PushService, vapid: Vapid) -> None:
    sub, other = push.new_subscription(), push.new_subscription()
    sub.gone()

    for _ in range(3):
        assert refused(lambda: send(sub, '"x"', vapid)).status_code == 410
    assert send(other, '"y"', vapid).status_code == 201
    assert push.deliveries(sub.id) == []
    assert push.requests == 4


def test_delay_lets_a_client_time_out_while_the_message_still_lands(vapid: Vapid) -> None:
    with PushService(delay=0.6) as push:
        sub = push.new_subscription()
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            send(sub, '"slow"', vapid, timeout=0.1)
        assert time.monotonic() - started < 0.5
        assert push.wait_for_requests(1, timeout=1) == 1
        assert push.deliveries() == []  # still sleeping
        assert [d.json() for d in push.wait_for(1, timeout=3)] == ["slow"]

        push.delay = 0
        assert send(sub, '"fast"', vapid, timeout=1).status_code == 201


def test_stopped_service_refuses_connections(vapid: Vapid) -> None:
    push = PushService().start()
    sub = push.new_subscription()
    assert send(sub, '"x"', vapid).status_code == 201
    push.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        send(sub, '"x"', vapid, timeout=2)
    push.stop()  # idempotent
    assert len(push.deliveries()) == 1


def test_fail_next_rejects_success_statuses(push: PushService) -> None:
    sub = push.new_subscription()
    with pytest.raises(ValueError):
        sub.fail_next(201)
    with pytest.raises(ValueError):
        sub.fail_next(500, times=0)
