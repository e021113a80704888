"""The device after pairing obeys its guardians and nobody else: signed policies and
decisions apply through the Agent; every forged, replayed, redirected, expired or downgraded
one is refused, changes nothing, is journalled, and is answered with a signed ack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.trust_device import Device, policy_json

from agent.core.decision import LockReason
from agent.core.guardian_code import code_at
from agent.store.events import EventKind
from agent.store.ledger import PurchaseStatus
from protocol.compose import compose, seal_to_device
from protocol.encoding import b64
from protocol.envelope import parse_body
from protocol.guardian import ReferenceGuardian
from protocol.keyring import Op
from protocol.keys import Identity
from protocol.messages import (
    AckResult,
    DecisionKind,
    DeleteData,
    EnterMinorMode,
    GrantTime,
    PurchaseDecision,
    SetGuardianCode,
    Until,
)
from protocol.sealing import Sealed


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    d = Device.make(tmp_path / "state")
    yield d
    d.close()


@pytest.fixture
def guardian() -> ReferenceGuardian:
    return ReferenceGuardian(Identity.generate(is_device=False, label="Mum"))


def _send(device: Device, message: tuple[str, Sealed]) -> tuple[AckResult, str]:
    mid, sealed = message
    got = device.trust.deliver(mid, sealed.encode())
    return got.result, got.reason


def test_pairing_installs_the_keyring_the_first_messages_and_seals_the_journal(
        device: Device, guardian: ReferenceGuardian) -> None:
    local_key = device.state / "journal-local.key"
    assert local_key.exists()
    done = device.pair(guardian, policy=policy_json(1, budget={"daily_minutes": 45}))
    assert done.guardian == "Mum" and len(done.deliveries) == 3
    assert all(d.result is AckResult.APPLIED for d in done.deliveries)
    status = device.trust.status()
    assert status.paired and status.guardians == ((guardian.kid, "Mum"),) and status.policy_version == 1
    assert device.agent.policy.budget.daily_minutes[1] == 45 and device.agent.tick().budget_seconds == 45 * 60
    assert not local_key.exists()  # the local sealing key is retired
    events = device.events(guardian)  # what was sealed before pairing opens for the guardian
    assert {EventKind.PAIRED, EventKind.POLICY_LOADED} <= {e.kind for e in events}
    for d in done.deliveries:  # each first message was acknowledged with a signature
        assert guardian.verify_ack(d.ack, device.trust.device.id).result is AckResult.APPLIED
    kinds = [o.kind for o in device.trust.store.outgoing()]
    assert kinds.count("ack") == 3 and kinds.count("paired") == 1


def test_pairing_without_sas_confirmation_keeps_nothing(device: Device, guardian: ReferenceGuardian) -> None:
    from protocol.pairing import PairingError
    with pytest.raises(PairingError, match="not confirmed"):
        device.pair(guardian, confirm=False)
    assert not device.trust.status().paired and (device.state / "journal-local.key").exists()
    assert device.trust.store.outgoing() == []


def test_after_pairing_a_local_policy_file_is_refused_as_tampering(
        device: Device, guardian: ReferenceGuardian, tmp_path: Path) -> None:
    device.pair(guardian, policy=policy_json(2))
    path = tmp_path / "child.toml"
    path.write_text('version = 99\nage_band = "16-18"\n')
    result = device.agent.load_policy(path)
    assert not result.ok and "paired" in result.message
    assert device.agent.policy.version == 2 and device.agent.policy.age_band.value == "8-12"
    tamper = device.events(guardian, EventKind.BAD_SIGNATURE)
    assert [e.data["what"] for e in tamper] == ["unsigned policy refused"]


def test_every_way_around_the_signature_is_refused_and_changes_nothing(
        device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian, policy=policy_json(5))
    dev_id, fam, g = device.trust.device.id, guardian.family, guardian.identity
    ring = guardian.keyring
    assert ring is not None
    other_device = Identity.generate(is_device=True)
    stranger = Identity.generate(is_device=False)

    def sealed(env_sender: Identity, value: object, *, device_id: str = dev_id, seq: int = 0,
               lifetime: int | None = None, now: int | None = None) -> tuple[str, Sealed]:
        env = compose(env_sender, fam, device_id, value, now or device.now, seq=seq, lifetime=lifetime)  # type: ignore[arg-type]
        mid = parse_body(env.body_bytes).id
        return mid, seal_to_device(env, mid, ring, dev_id)

    from protocol.messages import PolicyMessage
    replayed = guardian.decide(dev_id, GrantTime(30, None), device.now)
    assert _send(device, replayed)[0] is AckResult.APPLIED
    budget_before = device.agent.tick().budget_seconds
    flipped_id, flipped = guardian.decide(dev_id, GrantTime(60, None), device.now)
    raw = bytearray(flipped.encode())
    raw[len(raw) // 2] ^= 0x01
    attempts = {
        "downgrade": sealed(g, PolicyMessage(policy_json(4)), seq=4),
        "same version": sealed(g, PolicyMessage(policy_json(5, budget={"daily_minutes": 600})), seq=5),
        "replay": replayed,
        "another device": sealed(g, GrantTime(60, None), device_id=other_device.id),
        "expired": sealed(g, GrantTime(60, None), lifetime=60, now=device.now - 120),
        "stranger": sealed(stranger, GrantTime(60, None)),
        "device signs for itself": sealed(device.trust.device, GrantTime(60, None)),
    }
    results = {name: _send(device, m) for name, m in attempts.items()}
    results["flipped byte"] = (device.trust.deliver(flipped_id, bytes(raw)).result, "")
    assert results["replay"][0] is AckResult.DUPLICATE  # the same ack again, nothing re-applied
    for name, (result, _why) in results.items():
        if name != "replay":
            assert result is AckResult.REFUSED, name
    assert device.agent.policy.version == 5 and device.agent.tick().budget_seconds == budget_before
    tamper = device.events(guardian, EventKind.BAD_SIGNATURE)
    assert len(tamper) == len(attempts) - 1 + 1  # one each, the replay answered from memory
    for d in device.trust.store.outgoing():
        if d.kind == "ack":
            guardian.verify_ack(d.body, dev_id)  # every answer is signed by the device


def test_a_removed_guardians_signature_is_refused(device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian)
    dad = ReferenceGuardian(Identity.generate(is_device=False, label="Dad"))
    added = guardian.add_guardian(dad.identity.public, device.now)
    device.trust.deliver_keyring([e.to_json() for e in guardian.keyring.entries])  # type: ignore[union-attr]
    dad.keyring = guardian.keyring
    assert _send(device, dad.decide(device.trust.device.id, GrantTime(10, None), device.now))[0] \
        is AckResult.APPLIED
    old = guardian.decide(device.trust.device.id, GrantTime(10, None), device.now)
    removal = dad.remove_guardian(guardian.kid, device.now)
    device.trust.deliver_keyring([added.to_json(), removal.to_json()])
    assert _send(device, old) == (AckResult.REFUSED, _send(device, old)[1])
    assert "not an active guardian" in _send(device, old)[1]
    assert [g for g, _ in device.trust.status().guardians] == [dad.kid]
    # New journal segments are sealed to Dad only.
    device.journal.close_segment()
    device.agent.tick()
    device.agent.checkpoint()
    from agent.store.events import Event
    device.journal.record(Event(EventKind.REPORT, device.agent.now(), {"note": "after removal"}))
    newest = device.journal.segments()[-1]
    assert [rid for role, rid in newest.recipients] == [dad.identity.public.seal_hex]


def test_a_forged_keyring_entry_is_refused(device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian)
    ring = guardian.keyring
    assert ring is not None
    intruder = Identity.generate(is_device=False)
    forged = ring.entry(intruder, Op.ADD_GUARDIAN, party=intruder.public, now=device.now)
    from protocol.errors import ProtocolError
    with pytest.raises(ProtocolError):
        device.trust.deliver_keyring([forged.to_json()])
    assert [g for g, _ in device.trust.status().guardians] == [guardian.kid]


def test_decisions_take_effect_through_the_agent(device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian, policy=policy_json(1, budget={"daily_minutes": 30}))
    dev_id, now = device.trust.device.id, device.now
    assert device.agent.tick().budget_seconds == 30 * 60
    assert _send(device, guardian.decide(dev_id, GrantTime(15, None), now))[0] is AckResult.APPLIED
    assert device.agent.tick().budget_seconds == 45 * 60
    lock = guardian.decide(dev_id, Until(DecisionKind.LOCK, now + 3600), now)
    assert _send(device, lock)[0] is AckResult.APPLIED
    d = device.agent.tick()
    assert d.locked and d.reason is LockReason.GUARDIAN_LOCK
    assert _send(device, guardian.decide(dev_id, Until(DecisionKind.UNLOCK, now + 600), now))[0] \
        is AckResult.APPLIED
    assert not device.agent.tick().locked
    assert _send(device, guardian.decide(dev_id, Until(DecisionKind.LEAVE_MINOR_MODE, now + 600), now))[0] \
        is AckResult.APPLIED
    assert not device.agent.tick().minor_mode
    assert _send(device, guardian.decide(dev_id, EnterMinorMode(), now))[0] is AckResult.APPLIED
    assert device.agent.tick().minor_mode
    past = guardian.decide(dev_id, Until(DecisionKind.LOCK, now + 1), now)
    device.clock.advance(5)
    result, why = _send(device, past)
    assert result is AckResult.REFUSED and "already over" in why


def test_a_grant_answers_the_childs_request_and_a_redelivery_grants_once(
        device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian, policy=policy_json(1, budget={"daily_minutes": 30}))
    rid = device.controller.request_more_time(20, "homework")
    message = guardian.decide(device.trust.device.id, GrantTime(20, rid), device.now)
    assert _send(device, message)[0] is AckResult.APPLIED
    assert device.answered and device.answered[-1][:3] == (rid, True, 20)
    assert device.agent.tick().budget_seconds == 50 * 60
    # A crash after the effect and before the answer was stored: the message comes again.
    mid, sealed = message
    device.trust.store._db.execute("DELETE FROM answered WHERE id = ?", (mid,))
    assert device.trust.deliver(mid, sealed.encode()).result is AckResult.APPLIED
    assert device.agent.tick().budget_seconds == 50 * 60  # the grant's id is the message id


def test_a_purchase_waits_for_the_guardian_and_is_settled_by_the_signed_answer(
        device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian, policy=policy_json(1, spending={"ask_above": 1000},
                                             apps={"payers": ["org.example.Shop"]}))
    caps = device.agent.policy.spending
    from zoneinfo import ZoneInfo
    pending = device.ledger.authorize(app_id="org.example.Shop", idempotency_key="k1", amount=3000,
                                      currency="CNY", item="gems", caps=caps, tz=ZoneInfo("Asia/Shanghai"),
                                      now=device.agent.now())
    assert pending.status is PurchaseStatus.PENDING
    answer = guardian.decide(device.trust.device.id, PurchaseDecision(pending.request_id, True), device.now)
    assert _send(device, answer)[0] is AckResult.APPLIED
    assert device.ledger.get(pending.request_id).status is PurchaseStatus.APPROVED  # type: ignore[union-attr]
    again = guardian.decide(device.trust.device.id, PurchaseDecision(pending.request_id, False), device.now)
    result, why = _send(device, again)
    assert result is AckResult.REFUSED and "approved" in why


def test_the_guardian_code_comes_from_the_signed_secret_and_rotates(
        device: Device, guardian: ReferenceGuardian) -> None:
    device.pair(guardian, policy=policy_json(1, budget={"daily_minutes": 1}))
    device.clock.advance(120)
    device.agent.set_counting(True)
    device.clock.advance(120)
    assert device.agent.tick().locked
    secret = guardian.code_secrets[device.trust.device.id]
    assert device.controller.enter_guardian_code(code_at(secret, device.agent.now())).granted
    assert not device.agent.tick().locked
    new = bytes(range(32))
    assert _send(device, guardian.decide(device.trust.device.id, SetGuardianCode(new, 15), device.now))[0] \
        is AckResult.APPLIED
    device.clock.advance(60)
    assert not device.controller.enter_guardian_code(code_at(secret, device.agent.now())).granted
    assert device.controller.enter_guardian_code(code_at(new, device.agent.now())).granted


def test_the_same_secret_sent_again_does_not_reopen_a_used_code(
        device: Device, guardian: ReferenceGuardian) -> None:
    """The web app sends the code secret again when it admits a second guardian (sealed to
    everyone): the device must not forget that the code it just took was used."""
    device.pair(guardian, policy=policy_json(1, budget={"daily_minutes": 1}))
    device.agent.set_counting(True)
    device.clock.advance(240)
    assert device.agent.tick().locked
    secret = guardian.code_secrets[device.trust.device.id]
    code = code_at(secret, device.agent.now())
    assert device.controller.enter_guardian_code(code).granted
    again = guardian.decide(device.trust.device.id, SetGuardianCode(secret, 30), device.now)
    assert _send(device, again)[0] is AckResult.APPLIED
    assert not device.controller.enter_guardian_code(code).granted  # used once: still used


def test_delete_and_unpair_remove_the_data_and_return_to_the_factory_default(
        tmp_path: Path, guardian: ReferenceGuardian) -> None:
    factory = tmp_path / "policy.toml"
    factory.write_text('version = 3\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n')
    device = Device.make(tmp_path / "state", factory)
    try:
        device.pair(guardian, policy=policy_json(1, budget={"daily_minutes": 200}))
        device.agent.set_counting(True)
        device.clock.advance(600)
        device.agent.checkpoint()
        assert device.store.interval_count() > 0
        result = _send(device, guardian.decide(device.trust.device.id, DeleteData(DecisionKind.UNPAIR, "bye"),
                                               device.now))
        assert result[0] is AckResult.APPLIED
        assert not device.trust.status().paired and device.store.interval_count() == 0
        assert device.journal.segments() == [] or all(s.records == 0 for s in device.journal.segments()[:-1])
        assert device.agent.policy.version == 3  # the factory default file, not "unlimited"
        assert device.agent.tick().budget_seconds == 60 * 60  # the 8-12 band's daily total
        receipts = [o for o in device.trust.store.outgoing() if o.kind == "receipt"]
        assert len(receipts) == 1
        assert device.agent.load_policy(factory).ok  # unpaired: local files apply again
    finally:
        device.close()


def test_state_survives_a_restart(tmp_path: Path, guardian: ReferenceGuardian) -> None:
    device = Device.make(tmp_path / "state")
    device.pair(guardian, policy=policy_json(4))
    replayed = guardian.decide(device.trust.device.id, GrantTime(5, None), device.now)
    assert _send(device, replayed)[0] is AckResult.APPLIED
    device = device.remake()
    try:
        assert device.trust.status().paired and device.agent.policy.version == 4
        assert _send(device, replayed)[0] is AckResult.DUPLICATE
        downgrade = guardian.policy(device.trust.device.id, policy_json(3), device.now)
        assert _send(device, downgrade)[0] is AckResult.REFUSED
    finally:
        device.close()


def test_a_keyring_edited_on_disk_makes_every_message_refused(tmp_path: Path, guardian: ReferenceGuardian) -> None:
    """Root edits trust.sqlite to put their own key in: the chain no longer verifies, so
    nothing is accepted any more (and it is journalled), rather than the edit being obeyed."""
    device = Device.make(tmp_path / "state")
    try:
        device.pair(guardian)
        row = device.trust.store._db.execute("SELECT envelope FROM keyring WHERE seq = 0").fetchone()[0]
        env = json.loads(row)
        env["sig"] = b64(bytes(64))
        device.trust.store._db.execute("UPDATE keyring SET envelope = ? WHERE seq = 0", (json.dumps(env),))
        result, why = _send(device, guardian.decide(device.trust.device.id, GrantTime(5, None), device.now))
        assert result is AckResult.REFUSED and "not paired" in why
        assert any(e.data.get("what") == "stored keyring does not verify"
                   for e in device.events(guardian, EventKind.BAD_SIGNATURE))
    finally:
        device.close()
