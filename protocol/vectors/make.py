"""Write the known-answer vectors of PROTOCOL.md §12 into this directory.

    python -m protocol.vectors.make          # rewrite the files
    python -m protocol.vectors.make --check  # exit 1 if a deterministic part would change

Keys come from fixed seeds and Ed25519 is deterministic, so bodies, envelopes, signatures,
ids, hashes, SAS values and derived account keys are reproduced exactly by any correct
implementation (the `--check` mode and tests/unit/protocol/test_vectors.py prove that the
Python side still does). HPKE and AES-GCM nonces are random, so sealed blobs are *opening*
vectors: written once, then only opened. Every file also lists inputs that must be refused,
with the field the error names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from protocol import account
from protocol.compose import compose
from protocol.encoding import b64, dumps
from protocol.envelope import Body, MessageType, Purpose, parse_body, sign
from protocol.keyring import Keyring, Op, entry_hash, make_genesis
from protocol.keys import Identity
from protocol.messages import GrantTime, PolicyMessage, PurchaseDecision
from protocol.pairing import commitment, qr_mac, sas
from protocol.sealing import seal

HERE = Path(__file__).parent
T0 = 1_796_000_000  # 2026-11-30T01:33:20Z
FAMILY = "f0" * 16
SEEDS = {"guardian_a": b"vector guardian a", "guardian_b": b"vector guardian b",
         "device": b"vector device", "device_other": b"vector device other"}


def identities() -> dict[str, Identity]:
    return {name: Identity.from_seed(seed, is_device=name.startswith("device"), label=name)
            for name, seed in SEEDS.items()}


def _keys(ids: dict[str, Identity]) -> dict[str, Any]:
    how = "sign = SHA-256(seed || 'sign'), seal = SHA-256(seed || 'seal')"
    return {name: {"seed": seed.hex(), "derivation": how,
                   "sign_private": ids[name].sign_key.private_bytes_raw().hex(),
                   "seal_private": ids[name].seal_key.private_bytes_raw().hex(),
                   "sign": ids[name].public.sign.hex(), "seal": ids[name].public.seal.hex(),
                   "id": ids[name].id, "kind": "device" if ids[name].is_device else "guardian"}
            for name, seed in SEEDS.items()}


def _ring(ids: dict[str, Identity]) -> tuple[Keyring, list[dict[str, Any]]]:
    a, b, dev = ids["guardian_a"], ids["guardian_b"], ids["device"]
    ring = Keyring.from_entries([make_genesis(a, FAMILY, T0, message_id=f"{0:032x}")])
    for signer, op, party, target in ((a, Op.ADD_DEVICE, dev.public, None),
                                      (a, Op.ADD_GUARDIAN, b.public, None),
                                      (b, Op.REMOVE_GUARDIAN, None, a.id)):
        n = ring.head_seq + 1
        ring = ring.extend(ring.entry(signer, op, party=party, target=target, now=T0 + n,
                                      message_id=f"{n:032x}"))
    out = []
    for i, e in enumerate(ring.entries):
        state = Keyring.from_entries(ring.entries[: i + 1])
        out.append({"envelope": e.to_json(), "body": e.body_bytes.decode(), "hash": entry_hash(e),
                    "guardians": sorted(state.guardians), "devices": sorted(state.devices)})
    return ring, out


def keyring_vectors(ids: dict[str, Identity]) -> dict[str, Any]:
    ring, chain = _ring(ids)
    a, dev = ids["guardian_a"], ids["device"]
    # Entries that must be refused when appended to the chain's first two entries.
    base = Keyring.from_entries(ring.entries[:2])
    outsider = ids["device_other"]
    forged = sign(Body(MessageType.KEYRING, FAMILY, "", "ee" * 16, 2, T0, T0 + 100, outsider.id,
                       {"op": "add_guardian", "prev": base.head_hash,
                        "guardian": {"kid": ids["guardian_b"].id, "sign": ids["guardian_b"].public.sign.hex(),
                                     "seal": ids["guardian_b"].public.seal.hex(), "label": ""}}),
                  outsider.sign_key)
    wrong_prev = base.entry(a, Op.ADD_GUARDIAN, party=ids["guardian_b"].public, now=T0, message_id="e1" * 16)
    body = json.loads(wrong_prev.body_bytes)
    body["payload"]["prev"] = "ab" * 32
    wrong_prev = sign(parse_body(dumps(body)), a.sign_key)
    last = base.entry(a, Op.REMOVE_GUARDIAN, target=a.id, now=T0, message_id="e2" * 16)
    readd = base.entry(a, Op.ADD_DEVICE, party=dev.public, now=T0, message_id="e3" * 16)
    return {
        "family": FAMILY,
        "chain": chain,
        "refuse_after_first_two": [
            {"name": "signer not in the keyring", "envelope": forged.to_json(), "where": "kid"},
            {"name": "prev is not the head", "envelope": wrong_prev.to_json(), "where": "payload.prev"},
            {"name": "removes the last guardian", "envelope": last.to_json(), "where": "payload.target"},
            {"name": "adds a device twice", "envelope": readd.to_json(), "where": "payload"},
        ],
    }


def envelope_vectors(ids: dict[str, Identity]) -> dict[str, Any]:
    a, dev = ids["guardian_a"], ids["device"]
    policy = compose(a, FAMILY, dev.id, PolicyMessage({"version": 7, "age_band": "8-12"}), T0, seq=7,
                     message_id="01" * 16)
    grant = compose(a, FAMILY, dev.id, GrantTime(15, "02" * 16), T0, message_id="03" * 16)
    buy = compose(a, FAMILY, dev.id, PurchaseDecision("04" * 16, True), T0, message_id="05" * 16)
    good = [{"name": n, "signer": s, "purpose": Purpose.GUARDIAN.value, "body": e.body_bytes.decode(),
             "signing_input_hex": (b"minormode/v1/guardian-message\x00" + e.body_bytes).hex(),
             "envelope": e.to_json()} for n, s, e in (("policy v7", "guardian_a", policy),
                                                       ("grant 15 minutes", "guardian_a", grant),
                                                       ("approve a purchase", "guardian_a", buy))]
    env = grant.to_json()
    flipped_sig = dict(env, sig=b64(bytes([grant.sig[0] ^ 1]) + grant.sig[1:]))
    flipped_body = dict(env, body=b64(grant.body_bytes.replace(b'"minutes":15', b'"minutes":95')))
    as_device = sign(Body(MessageType.DECISION, FAMILY, dev.id, "06" * 16, 0, T0, T0 + 3600, a.id,
                          {"kind": "grant_time", "minutes": 15, "request_id": None}), a.sign_key)
    wrong_domain = dict(as_device.to_json(), sig=b64(a.sign_key.sign(b"minormode/v1/device-message\x00"
                                                                        + as_device.body_bytes)))
    return {
        "valid": good,
        "refuse": [
            {"name": "one flipped signature bit", "envelope": flipped_sig, "where": "envelope.sig"},
            {"name": "one changed body byte", "envelope": flipped_body, "where": "envelope.sig"},
            {"name": "signed under the device-message domain", "envelope": wrong_domain,
             "where": "envelope.sig"},
            {"name": "padded base64", "envelope": dict(env, sig=env["sig"] + "=="), "where": "envelope.sig"},
            {"name": "unknown envelope key", "envelope": dict(env, extra=1), "where": "envelope.extra"},
            {"name": "version 2", "envelope": dict(env, v=2), "where": "envelope.v"},
        ],
        "refuse_body": [
            {"name": "duplicate key", "body": '{"type":"decision","type":"policy"}', "where": "body"},
            {"name": "float seq", "body": grant.body_bytes.decode().replace('"seq":0', '"seq":0.0'),
             "where": "body.seq"},
            {"name": "boolean seq", "body": grant.body_bytes.decode().replace('"seq":0', '"seq":false'),
             "where": "body.seq"},
            {"name": "unknown type", "body": grant.body_bytes.decode().replace('"decision"', '"decree"'),
             "where": "body.type"},
        ],
    }


def sealing_vectors(ids: dict[str, Identity]) -> dict[str, Any]:
    dev, a = ids["device"], ids["guardian_a"]
    ctx = f"guardian-message/{FAMILY}/{dev.id}/{'03' * 16}"
    plaintext = b'{"hello":"sealed"}'
    sealed = seal(plaintext, ctx, [dev.public.seal_key, a.public.seal_key])
    return {"suite": "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-128-GCM + AES-256-GCM",
            "open": [{"ctx": ctx, "plaintext": plaintext.decode(), "sealed": sealed.to_json(),
                      "openers": ["device", "guardian_a"], "not_openers": ["guardian_b"]}],
            "refuse": [{"name": "another context", "ctx": ctx.replace("03", "04"), "sealed": sealed.to_json(),
                        "opener": "device", "where": "sealed.ctx"}]}


def pairing_vectors(ids: dict[str, Identity]) -> dict[str, Any]:
    dev, a = ids["device"].public, ids["guardian_a"].public
    nd, ng, secret = bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 80))
    commit = commitment(dev, nd)
    return {"device": "device", "guardian": "guardian_a", "device_nonce": b64(nd), "guardian_nonce": b64(ng),
            "commitment": commit, "sas": sas(commit, dev, nd, a, ng), "qr_secret": b64(secret),
            "qr_mac": b64(qr_mac(secret, commit, a, ng)),
            "qr_url": f"https://dash.example/pair#v=1&c=12345678&d={dev.id}&s={b64(secret)}"}


def account_vectors(ids: dict[str, Identity]) -> dict[str, Any]:
    params = account.KdfParams("pbkdf2-sha256", 100_000, bytes(range(16)))
    keys = account.derive("correct horse battery staple", params)
    recovery = bytes(range(100, 132))
    wrapped = account.wrap_identity(ids["guardian_a"], keys.wrap)
    return {"password": "correct horse battery staple", "kdf": params.to_json(),
            "master": account.master_key("correct horse battery staple", params).hex(),
            "auth": b64(keys.auth), "wrap": b64(keys.wrap), "guardian": "guardian_a",
            "wrapped_keys": wrapped, "recovery_key": account.format_recovery_key(recovery),
            "recovery_auth": b64(account.recovery_auth(recovery)),
            "recovery_wrap": b64(account.recovery_wrap(recovery))}


DETERMINISTIC = {"keys": _keys, "keyring": keyring_vectors, "envelopes": envelope_vectors,
                 "pairing": pairing_vectors}
RANDOMISED = {"sealing": sealing_vectors, "account": account_vectors}


def _deterministic_view(name: str, data: dict[str, Any]) -> Any:
    """What must regenerate identically: everything but randomised blobs."""
    if name == "account":
        return {k: v for k, v in data.items() if k != "wrapped_keys"}
    if name == "sealing":
        return data["suite"]
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    ids = identities()
    changed = []
    for name, make in {**DETERMINISTIC, **RANDOMISED}.items():
        path = HERE / f"{name}.json"
        data = make(ids)
        if args.check:
            old = json.loads(path.read_text())
            if _deterministic_view(name, old) != _deterministic_view(name, json.loads(json.dumps(data))):
                changed.append(name)
            continue
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    if changed:
        print(f"vectors would change: {', '.join(changed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
