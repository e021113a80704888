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
import os
import re
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

from agent.store import seal
from protocol.compose import compose, seal_to_device
from protocol.envelope import parse_body
from protocol.guardian import ReferenceGuardian
from protocol.keys import Identity
from protocol.messages import GrantTime, PolicyMessage
from protocol.pairing import Offer, Reveal
from protocol.sealing import Sealed

ROOT = Path(__file__).parents[3]
FILE_POLICY = (ROOT / "config" / "policies" / "8-12.toml").read_text()
TZ = "Asia/Shanghai"
OPEN = ["windows", "curfew", "school", "rest", "games"]


def signed_policy(version: int, minutes: int) -> dict[str, Any]:
    return {"version": version, "age_band": "8-12", "timezone": TZ, "waive": OPEN,
            "budget": {"daily_minutes": minutes}, "enforcement": {"language": "en"}}


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.policy = tmp / "policy.toml"
        self.policy.write_text(FILE_POLICY)
        self.log = tmp / "agent.log"
        start = datetime.now(UTC).replace(microsecond=0).isoformat()
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.daemon", "--dev", "--speed", "60", "--start", start,
                 "--policy", str(self.policy), "--state", str(tmp / "state")],
                stderr=log, cwd=ROOT, env=dict(os.environ))

    def wait_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the log:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


async def _call(bus: MessageBus, path: str, iface: str, member: str, sig: str = "",
                body: list[Any] | None = None) -> Message:
    reply = await bus.call(Message(destination="org.minormode.Agent1", path=path, interface=iface,
                                   member=member, signature=sig, body=body or []))
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        raise AssertionError(f"{member}: {reply.error_name}: {reply.body}")
    return reply


async def test_the_daemon_obeys_only_what_its_guardian_signed(daemon: Daemon) -> None:
    address = daemon.wait_log(r"development bus (\S+):").group(1)
    daemon.wait_log("enforcing policy version")
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
                           str(daemon.tmp / "state"), "--key", str(key)],
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
