"""The guardian's export is checked as the device checks its journal: chain, purge anchor
and checkpoint signatures (agent.store.chain.verify), before anything is decrypted."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.store import datarights
from agent.store.chain import chain_hash
from agent.store.events import Event, EventKind
from agent.store.journal import Journal

from .conftest import FakeClock, Keys  # type: ignore[import-not-found]


def _events(at: datetime, n: int) -> list[Event]:
    return [Event(EventKind.DNS_BLOCKED, at, {"domain": f"site{i}.example"}) for i in range(n)]


@pytest.fixture
def exported(tmp_path: Path, keys: Keys, clock: FakeClock) -> Path:
    """A journal with a purge behind it (a signed anchor), three closed segments and an
    open one, exported."""
    j = Journal(tmp_path / "j.db", keys.device, keys.local, clock=clock)
    j.pair([keys.guardian.public_key()])
    for _ in range(3):
        for ev in _events(clock.now, 3):
            j.record(ev)
        j.close_segment()
        clock.advance(days=2)
    assert j.purge_before(clock.now - timedelta(days=5)).segments == 1
    j.append(_events(clock.now, 2))
    out = tmp_path / "export.json"
    assert datarights.export(j, out) == 8
    j.close()
    return out


def _edit(path: Path, change: Any) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


def test_an_honest_export_verifies_and_opens(exported: Path, keys: Keys) -> None:
    body = json.loads(exported.read_text())
    assert body["anchor"]["seq"] == 3 and body["anchor"]["signature"]  # the purge's anchor
    entries = datarights.read_export(exported, keys.guardian, keys.device.public_key())
    assert [e.seq for e in entries] == list(range(4, 12))
    assert {e.event.data["domain"] for e in entries} == {f"site{i}.example" for i in range(3)}


def test_a_forged_checkpoint_signature_is_caught(exported: Path, keys: Keys) -> None:
    def forge(body: dict[str, Any]) -> None:
        cp = body["checkpoints"][0]
        cp["signature"] = "00" + cp["signature"][2:]

    _edit(exported, forge)
    with pytest.raises(datarights.ExportError, match="bad signature"):
        datarights.read_export(exported, keys.guardian)


def test_a_forged_anchor_signature_is_caught(exported: Path, keys: Keys) -> None:
    def forge(body: dict[str, Any]) -> None:
        body["anchor"]["signature"] = Ed25519PrivateKey.generate().sign(b"anything").hex()

    _edit(exported, forge)
    with pytest.raises(datarights.ExportError, match="anchor"):
        datarights.read_export(exported, keys.guardian)


def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_signed_checkpoints(
    exported: Path, keys: Keys
) -> None:
    """Links and hashes all agree after the rewrite: only a signature can tell."""

    def rewrite(body: dict[str, Any]) -> None:
        prev = bytes.fromhex(body["anchor"]["hash"])
        for seg in body["segments"]:
            for rec in seg["records"]:
                ct = bytes.fromhex(rec["ciphertext"])
                if rec["seq"] == 5:
                    ct = bytes([ct[0] ^ 1]) + ct[1:]
                rec["ciphertext"] = ct.hex()
                rec["prev_hash"] = prev.hex()
                prev = chain_hash(prev, rec["seq"], seg["uid"], bytes.fromhex(rec["nonce"]), ct)
                rec["hash"] = prev.hex()

    _edit(exported, rewrite)
    with pytest.raises(datarights.ExportError, match="rewritten"):
        datarights.read_export(exported, keys.guardian)


def test_an_export_signed_by_another_device_is_refused(exported: Path, keys: Keys) -> None:
    with pytest.raises(datarights.ExportError, match="another device key"):
        datarights.read_export(exported, keys.guardian, Ed25519PrivateKey.generate().public_key())
