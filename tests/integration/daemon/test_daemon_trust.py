"""The real daemon (development mode, its private bus) obeys its guardian and nobody else.

Paired over Guardian1 with the reference guardian client; a signed one-minute budget locks
the simulated child's session; a signed grant unlocks it; then each way around the
signature is tried — a local policy file, a downgrade, a replay, another device's policy,
an expired one, a removed guardian's, one changed byte — and each is refused, changes
nothing, and leaves one tamper event in the journal the guardian reads afterwards.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from support.agent_process import AgentProcess
from support.sessionbus import CHILD_UID

from agent.core.guardian_code import code_at
from agent.store import seal
from protocol.compose import compose, seal_to_device
from protocol.envelope import parse_body
from protocol.guardian import ReferenceGuardian
from protocol.keys import Identity
from protocol.messages import GrantTime, PolicyMessage
from protocol.pairing import DevicePairing, Offer, Reveal
from protocol.sealing import Sealed

ROOT = Path(__file__).parents[3]
CLIENT = ROOT / "tests" / "support" / "dbus_client.py"
FILE_POLICY = (ROOT / "config" / "policies" / "8-12.toml").read_text()
TZ = "Asia/Shanghai"
OPEN = ["windows", "curfew", "school", "rest", "games"]


def signed_policy(version: int, minutes: int) -> dict[str, Any]:
    return {"version": version, "age_band": "8-12", "timezone": TZ, "waive": OPEN,
            "budget": {"daily_minutes": minutes}, "enforcement": {"language": "en"}}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[AgentProcess]:
    d = AgentProcess(tmp_path).start()
    try:
        yield d
    finally:
        d.kill9()


async def _call(bus: MessageBus, path: str, iface: str, member: str, sig: str = "",
                body: list[Any] | None = None) -> Message:
    reply = await bus.call(Message(destination="org.minormode.Agent1", path=path, interface=iface,
                                   member=member, signature=sig, body=body or []))
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        raise AssertionError(f"{member}: {reply.error_name}: {reply.body}")
    return reply


async def test_the_daemon_obeys_only_what_its_guardian_signed(daemon: AgentProcess) -> None:
    address = daemon.address
    bus = await MessageBus(bus_address=address).connect()
    g = ReferenceGuardian(Identity.generate(is_device=False, label="Mum"))

    async def guardian(member: str, sig: str = "", body: list[Any] | None = None) -> list[Any]:
        return list((await _call(bus, "/org/minormode/Guardian1", "org.minormode.Guardian1", member, sig,
                                 body)).body)

    async def status() -> dict[str, Any]:
        reply = await _call(bus, "/org/minormode/Agent1", "org.minormode.Agent1", "GetStatus")
        return {k: v.value for k, v in reply.body[0].items()}

    def now() -> int:
        return int(time.time())

    try:
        [offer] = await guardian("PairingOffer", "s", [""])
        gp = g.start_pairing(Offer.from_json(json.loads(offer)))
        reveal, sas = await guardian("PairingRespond", "s", [json.dumps(gp.response().to_json())])
        assert gp.on_reveal(Reveal.from_json(json.loads(reveal))) == sas
        complete = g.finish_pairing(gp, now(), policy=signed_policy(1, 1))
        ok, _ = await guardian("PairingComplete", "sb", [json.dumps(complete.to_json()), True])
        assert ok
        [trust] = await guardian("GetTrust")
        device_id = trust["DeviceId"].value
        assert trust["Paired"].value and trust["PolicyVersion"].value == 1

        # The signed one-minute budget is enforced: the simulated child is locked out.
        deadline = time.monotonic() + 20
        while not (s := await status())["Locked"]:
            assert time.monotonic() < deadline, s
            await _sleep_briefly()
        assert s["LockReason"] == "budget_spent" and s["PolicyVersion"] == 1

        # A signed grant unlocks it.
        mid, sealed = g.decide(device_id, GrantTime(30, None), now())
        result, _, ack = await guardian("Deliver", "ss", [mid, sealed.encode().decode()])
        assert result == "applied" and g.verify_ack(ack.encode(), device_id).message == mid
        deadline = time.monotonic() + 10
        while (s := await status())["Locked"]:
            assert time.monotonic() < deadline, s
            await _sleep_briefly()

        # Each way around the signature: refused, nothing changed, one tamper event each.
        daemon.policy.write_text(FILE_POLICY.replace("version = 1 ", "version = 50 "))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("only policies its guardians signed apply")
        ring = g.keyring
        assert ring is not None
        other_device = Identity.generate(is_device=True)

        def forged(value: Any, *, seq: int = 0, target: str = device_id, signer: Identity = g.identity,
                   issued: int | None = None, lifetime: int | None = None) -> tuple[str, str]:
            env = compose(signer, ring.family, target, value, issued or now(), seq=seq, lifetime=lifetime)
            message_id = parse_body(env.body_bytes).id
            return message_id, seal_to_device(env, message_id, ring, device_id).encode().decode()

        flip_id, flip = g.policy(device_id, signed_policy(9, 600), now())
        ct = bytearray(flip.ct)  # one byte of the sealed policy itself (not another reader's key wrap)
        ct[len(ct) // 3] ^= 0x02
        flipped = Sealed(flip.ctx, flip.wraps, flip.nonce, bytes(ct)).encode()
        dad = ReferenceGuardian(Identity.generate(is_device=False, label="Dad"))
        g.add_guardian(dad.identity.public, now())
        dad.keyring = g.keyring
        late = dad.decide(device_id, GrantTime(60, None), now())  # signed while Dad is a guardian
        await guardian("DeliverKeyring", "s", [json.dumps([e.to_json() for e in g.keyring.entries])])  # type: ignore[union-attr]
        removal = g.remove_guardian(dad.kid, now())
        await guardian("DeliverKeyring", "s", [json.dumps([removal.to_json()])])
        attempts = {
            "downgrade": forged(PolicyMessage(signed_policy(1, 600)), seq=1),
            "replay": (mid, sealed.encode().decode()),
            "another device": forged(PolicyMessage(signed_policy(7, 600)), seq=7, target=other_device.id),
            "expired": forged(PolicyMessage(signed_policy(8, 600)), seq=8, issued=now() - 7200, lifetime=60),
            "removed guardian": (late[0], late[1].encode().decode()),
            "one byte": (flip_id, flipped.decode()),
        }
        for name, (message_id, text) in attempts.items():
            result, reason, _ = await guardian("Deliver", "ss", [message_id, text])
            assert result == ("duplicate" if name == "replay" else "refused"), (name, reason)
        [trust] = await guardian("GetTrust")
        assert trust["PolicyVersion"].value == 1
        s = await status()
        assert s["PolicyVersion"] == 1 and s["BudgetSeconds"] == 31 * 60
    finally:
        bus.disconnect()
        assert daemon.stop() == 0

    key = daemon.tmp / "guardian.key"
    seal.write_private_key(key, g.identity.seal_key)
    read = subprocess.run([sys.executable, "-m", "agent.cli", "journal", "read", "--state",
                           str(daemon.state), "--key", str(key)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    events = [json.loads(line) for line in read.stdout.splitlines()]
    tamper = [e for e in events if e["kind"] == "bad_signature"]
    # The file, and every refused message but the replay (answered from memory).
    assert len(tamper) == 1 + len(attempts) - 1, [e["data"] for e in tamper]
    assert tamper[0]["data"]["what"] == "unsigned policy refused"
    kinds = {e["kind"] for e in events}
    assert {"paired", "policy_loaded", "grant_used", "lock", "unlock", "agent_start"} <= kinds


async def _sleep_briefly() -> None:
    await asyncio.sleep(0.1)  # polling the daemon's status; every wait above is bounded


async def test_a_key_swapping_relay_makes_the_sas_differ_and_the_daemon_keeps_nothing(daemon: AgentProcess) -> None:
    """The relay pairs with the daemon as a fake guardian and with the real guardian as a
    fake device: the two people see different numbers, say so, and nothing is kept."""
    address = daemon.address
    bus = await MessageBus(bus_address=address).connect()
    try:
        async def guardian1(member: str, sig: str = "", body: list[Any] | None = None) -> Message:
            reply = await bus.call(Message(destination="org.minormode.Agent1", path="/org/minormode/Guardian1",
                                           interface="org.minormode.Guardian1", member=member, signature=sig,
                                           body=body or []))
            assert reply is not None
            return reply

        offer = Offer.from_json(json.loads((await guardian1("PairingOffer", "s", [""])).body[0]))
        relay_guardian = ReferenceGuardian()
        to_device = relay_guardian.start_pairing(offer)
        revealed = await guardian1("PairingRespond", "s", [json.dumps(to_device.response().to_json())])
        device_sas = revealed.body[1]
        to_device.on_reveal(Reveal.from_json(json.loads(revealed.body[0])))
        real = ReferenceGuardian()
        fake_device = DevicePairing(Identity.generate(is_device=True))
        with_guardian = real.start_pairing(fake_device.offer())
        guardian_sas = with_guardian.on_reveal(fake_device.on_response(with_guardian.response()))
        assert guardian_sas != device_sas
        forged = relay_guardian.finish_pairing(to_device, int(time.time()))
        refused = await guardian1("PairingComplete", "sb", [json.dumps(forged.to_json()), False])
        assert refused.message_type is MessageType.ERROR and "not confirmed" in refused.body[0]
        trust = (await guardian1("GetTrust")).body[0]
        assert trust["Paired"].value is False and trust["Pairing"].value == "idle"
    finally:
        bus.disconnect()
        assert daemon.stop() == 0
    assert not (daemon.state / "trust.sqlite").exists() or _keyring_rows(daemon) == 0


def _keyring_rows(daemon: AgentProcess) -> int:
    import sqlite3
    with sqlite3.connect(daemon.state / "trust.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM keyring").fetchone()[0])


async def test_guardian_codes_from_the_cli_and_from_the_guardian_unlock_the_daemon(tmp_path: Path) -> None:
    """One secret form: the daemon's --guardian-secret file and `minormodectl guardian-code`
    read the same hex file; after pairing, the provisioned secret (the guardian's app shows
    its codes) replaces it. A used code stays used across a restart."""
    secret_file = tmp_path / "guardian.secret"
    secret_file.write_text(bytes(range(40, 72)).hex() + "\n")
    first = AgentProcess(tmp_path, "--guardian-secret", str(secret_file), speed=1).start()
    try:
        address = first.address
        code = _cli("guardian-code", "--secret-file", str(secret_file))
        assert _as_child(address, code) == [True]
        assert _as_child(address, code) == [False]  # single use
    finally:
        assert first.stop() == 0
    again = AgentProcess(tmp_path, "--guardian-secret", str(secret_file), speed=1).start()
    try:
        address = again.address
        assert _as_child(address, code) == [False]  # still used after the restart
        bus = await MessageBus(bus_address=address).connect()
        g = ReferenceGuardian()
        try:
            offer = await _call(bus, "/org/minormode/Guardian1", "org.minormode.Guardian1", "PairingOffer", "s", [""])
            gp = g.start_pairing(Offer.from_json(json.loads(offer.body[0])))
            reveal = await _call(bus, "/org/minormode/Guardian1", "org.minormode.Guardian1", "PairingRespond", "s",
                                 [json.dumps(gp.response().to_json())])
            gp.on_reveal(Reveal.from_json(json.loads(reveal.body[0])))
            done = g.finish_pairing(gp, int(time.time()), code_secret=bytes(range(200, 232)))
            await _call(bus, "/org/minormode/Guardian1", "org.minormode.Guardian1", "PairingComplete", "sb",
                        [json.dumps(done.to_json()), True])
        finally:
            bus.disconnect()
        from_cli = _cli("guardian-code", "--state", str(tmp_path / "state"))
        assert from_cli == code_at(bytes(range(200, 232)), datetime.now(UTC)) or from_cli == code_at(
            bytes(range(200, 232)), datetime.fromtimestamp(time.time() - 1, UTC))
        old_file_code = _cli("guardian-code", "--secret-file", str(secret_file))
        assert _as_child(address, old_file_code) == [False]  # the guardian's secret replaced the file's
        assert _as_child(address, from_cli) == [True]
    finally:
        assert again.stop() == 0


def _cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return out.stdout.strip()


def _as_child(address: str, code: str) -> list[bool]:
    """EnterGuardianCode as the child's uid (the bus tells the agent who calls)."""
    calls = json.dumps([{"member": "EnterGuardianCode", "signature": "s", "args": [code]}])
    out = subprocess.run(["/usr/bin/python3", str(CLIENT), address, calls], capture_output=True, text=True,
                         user=CHILD_UID, check=True)
    [result] = json.loads(out.stdout)
    assert result["ok"], result
    return [result["body"][0]]
