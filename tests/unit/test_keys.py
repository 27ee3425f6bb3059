"""The master keys of PARLEY_KEYS: how they are written, and what a wrapped data key is bound to."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from eventstore.keys import BadMasterKeys, Keyring, MasterKeys, new_master_key


def test_the_first_master_key_wraps_new_data_keys():
    keys = MasterKeys.parse(f"k1:{new_master_key()},k0:{new_master_key()}")
    wrapped_by, wrapped = keys.wrap("ada", b"d" * 32)
    assert wrapped_by == "k1"
    assert keys.unwrap("ada", "k1", wrapped) == b"d" * 32


def test_rotation_unwraps_with_the_old_key_and_wraps_with_the_new():
    k1 = new_master_key()
    before = MasterKeys.parse(f"k1:{k1}")
    _, wrapped = before.wrap("ada", b"d" * 32)
    during = MasterKeys.parse(f"k2:{new_master_key()}, k1:{k1}")
    assert during.current == "k2"
    master, rewrapped = during.wrap("ada", during.unwrap("ada", "k1", wrapped))
    assert master == "k2" and during.unwrap("ada", "k2", rewrapped) == b"d" * 32


def test_a_wrapped_key_opens_only_for_its_own_subject():
    keys = MasterKeys.parse(f"k1:{new_master_key()}")
    _, wrapped = keys.wrap("ada", b"d" * 32)
    with pytest.raises(InvalidTag):
        keys.unwrap("grace", "k1", wrapped)


@pytest.mark.parametrize("spec, says", [
    ("", "names no key"),
    ("k1", "id:key"),
    ("k1:c2hvcnQ", "32 bytes"),
    ("k1:%%%%", "base64url"),
    (f"k1:{new_master_key()},k1:{new_master_key()}", "twice"),
])
def test_unreadable_master_keys_are_refused_saying_why(spec, says):
    with pytest.raises(BadMasterKeys, match=says):
        MasterKeys.parse(spec)


def test_sealed_fields_open_only_for_their_event_type_and_subject():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ring = Keyring({"ada": AESGCM(AESGCM.generate_key(bit_length=256)), "gone": None})
    sealed = ring.seal("MessageSent", "ada", b'{"body":"hi"}')
    assert ring.open("MessageSent", "ada", sealed) == b'{"body":"hi"}'
    assert ring.open("MessageEdited", "ada", sealed) is None
    assert ring.erased("gone") and not ring.erased("ada") and not ring.erased("never-seen")
    assert ring.open("MessageSent", "gone", sealed) is None


def test_no_two_seals_share_a_nonce():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ring = Keyring({"ada": AESGCM(AESGCM.generate_key(bit_length=256))})
    import base64

    nonces = {base64.b64decode(ring.seal("MessageSent", "ada", b"{}"))[:12] for _ in range(10_000)}
    assert len(nonces) == 10_000
