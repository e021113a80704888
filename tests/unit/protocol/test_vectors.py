"""The known-answer vectors in protocol/vectors: the Python side reproduces every
deterministic value, opens every sealed one and refuses every must-refuse case. The web
app's crypto tests run the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import account
from protocol.encoding import b64, unb64
from protocol.envelope import Purpose, envelope_from_json, parse_body, verify
from protocol.errors import ProtocolError
from protocol.keyring import Keyring, entry_hash
from protocol.keys import PublicParty
from protocol.pairing import QrPayload, commitment, qr_mac, sas
from protocol.sealing import open_sealed, sealed_from_json
from protocol.vectors import make

VECTORS = Path(make.__file__).parent


def _load(name: str) -> Any:
    return json.loads((VECTORS / f"{name}.json").read_text())


KEYS = _load("keys")


def _party(name: str) -> PublicParty:
    k = KEYS[name]
    return PublicParty(k["id"], bytes.fromhex(k["sign"]), bytes.fromhex(k["seal"]))


def test_deterministic_vectors_regenerate_identically() -> None:
    """A code change that alters any signed byte, id, hash or derived key fails here."""
    assert make.main(["--check"]) == 0


def test_keys_derive_from_their_seeds_and_ids_hash_the_keys() -> None:
    ids = make.identities()
    for name, k in KEYS.items():
        assert ids[name].public.sign.hex() == k["sign"] and ids[name].id == k["id"]


def test_envelopes_verify_and_refusals_name_their_field() -> None:
    data = _load("envelopes")
    for case in data["valid"]:
        env = envelope_from_json(case["envelope"])
        assert env.body_bytes.decode() == case["body"]
        body = verify(env, _party(case["signer"]).sign_key, Purpose(case["purpose"]))
        assert body.kid == KEYS[case["signer"]]["id"]
    for case in data["refuse"]:
        with pytest.raises(ProtocolError) as err:
            verify(envelope_from_json(case["envelope"]), _party("guardian_a").sign_key, Purpose.GUARDIAN)
        assert err.value.where == case["where"], case["name"]
    for case in data["refuse_body"]:
        with pytest.raises(ProtocolError) as err:
            parse_body(case["body"].encode())
        assert err.value.where == case["where"], case["name"]


def test_keyring_chain_hashes_states_and_refusals() -> None:
    data = _load("keyring")
    entries = [envelope_from_json(c["envelope"]) for c in data["chain"]]
    for i, case in enumerate(data["chain"]):
        ring = Keyring.from_entries(entries[: i + 1])
        assert entry_hash(entries[i]) == case["hash"]
        assert sorted(ring.guardians) == case["guardians"] and sorted(ring.devices) == case["devices"]
    base = Keyring.from_entries(entries[:2])
    for case in data["refuse_after_first_two"]:
        with pytest.raises(ProtocolError) as err:
            base.extend(envelope_from_json(case["envelope"]), "")
        assert err.value.where.lstrip(".") == case["where"], case["name"]


def test_sealed_vectors_open_for_their_recipients_only() -> None:
    data = _load("sealing")
    for case in data["open"]:
        sealed = sealed_from_json(case["sealed"])
        for name in case["openers"]:
            key = X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[name]["seal_private"]))
            assert open_sealed(sealed, case["ctx"], key).decode() == case["plaintext"]
        for name in case["not_openers"]:
            key = X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[name]["seal_private"]))
            with pytest.raises(ProtocolError):
                open_sealed(sealed, case["ctx"], key)
    for case in data["refuse"]:
        key = X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[case["opener"]]["seal_private"]))
        with pytest.raises(ProtocolError) as err:
            open_sealed(sealed_from_json(case["sealed"]), case["ctx"], key)
        assert err.value.where == case["where"]


def test_pairing_commitment_sas_and_qr() -> None:
    data = _load("pairing")
    dev, g = _party(data["device"]), _party(data["guardian"])
    nd, ng = unb64(data["device_nonce"], "nd"), unb64(data["guardian_nonce"], "ng")
    assert commitment(dev, nd) == data["commitment"]
    assert sas(data["commitment"], dev, nd, g, ng) == data["sas"]
    assert b64(qr_mac(unb64(data["qr_secret"], "s"), data["commitment"], g, ng)) == data["qr_mac"]
    qr = QrPayload.from_url(data["qr_url"])
    assert qr.device_id == dev.id and b64(qr.secret) == data["qr_secret"]


def test_account_derivation_and_the_wrapped_bundle() -> None:
    data = _load("account")
    params = account.KdfParams.from_json(data["kdf"])
    assert account.master_key(data["password"], params).hex() == data["master"]
    keys = account.derive(data["password"], params)
    assert b64(keys.auth) == data["auth"] and b64(keys.wrap) == data["wrap"]
    identity = account.unwrap_identity(data["wrapped_keys"], keys.wrap, KEYS[data["guardian"]]["id"])
    assert identity.public.sign.hex() == KEYS[data["guardian"]]["sign"]
    recovery = account.parse_recovery_key(data["recovery_key"])
    assert b64(account.recovery_auth(recovery)) == data["recovery_auth"]
    assert isinstance(identity.public.sign_key, Ed25519PublicKey)
