"""Guardian account keys: the password gives two unrelated keys; the bundle opens only
with the right one; the recovery key works without the password."""

from __future__ import annotations

import pytest

from protocol import account
from protocol.errors import ProtocolError, SealError
from protocol.keys import Identity


def test_auth_and_wrap_keys_differ_and_depend_on_password_and_salt() -> None:
    p1 = account.KdfParams("pbkdf2-sha256", 100_000, bytes(16))
    p2 = account.KdfParams("pbkdf2-sha256", 100_000, bytes(15) + b"\x01")
    k = account.derive("pässword", p1)
    assert k.auth != k.wrap and len(k.auth) == 32
    assert account.derive("pässword", p2).auth != k.auth
    assert account.derive("password", p1).auth != k.auth
    # NFKC: the composed and decomposed forms of ä are the same password.
    assert account.derive("pa\u0308ssword", p1) == k


def test_wrapped_keys_open_only_with_the_wrap_key_and_for_the_right_kid() -> None:
    g = Identity.generate(is_device=False)
    params = account.KdfParams.new(100_000)
    keys = account.derive("hunter2!", params)
    wrapped = account.wrap_identity(g, keys.wrap)
    again = account.unwrap_identity(wrapped, keys.wrap, g.id)
    assert again.id == g.id
    with pytest.raises(SealError, match="wrong password"):
        account.unwrap_identity(wrapped, account.derive("hunter3!", params).wrap, g.id)
    with pytest.raises(SealError):
        account.unwrap_identity(wrapped, keys.wrap, Identity.generate(is_device=False).id)


def test_recovery_key_round_trips_in_its_printed_form() -> None:
    key = account.new_recovery_key()
    text = account.format_recovery_key(key)
    assert len(text.replace("-", "")) == 52
    assert account.parse_recovery_key(text.lower().replace("-", " ")) == key
    with pytest.raises(ProtocolError):
        account.parse_recovery_key("not a key")
    assert account.recovery_auth(key) != account.recovery_wrap(key)


def test_kdf_params_refuse_weak_settings() -> None:
    with pytest.raises(ProtocolError):
        account.KdfParams.from_json({"alg": "pbkdf2-sha256", "iterations": 1000, "salt": "AAAAAAAAAAAAAAAAAAAAAA"})
    with pytest.raises(ProtocolError):
        account.KdfParams.from_json({"alg": "md5", "iterations": 600000, "salt": "AAAAAAAAAAAAAAAAAAAAAA"})
