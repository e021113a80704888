"""kill -9 while appending loses no event the journal acknowledged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.store import seal
from agent.store.identity import ensure_device_key
from agent.store.journal import Journal

_CHILD = r"""
import sys
from datetime import UTC, datetime
from pathlib import Path
from agent.store import seal
from agent.store.events import Event, EventKind
from agent.store.identity import load_device_key
from agent.store.journal import Journal

d = Path(sys.argv[1])
j = Journal(d / "journal.db", load_device_key(d / "device.key"),
            seal.load_private_key(d / "local.key"), clock=lambda: datetime.now(UTC))
batch = int(sys.argv[2])
i = 0
while True:
    events = [Event(EventKind.DNS_BLOCKED, datetime.now(UTC), {"i": i + k}) for k in range(batch)]
    for seq in j.append(events):
        sys.stdout.write(f"{seq}\n")
    sys.stdout.flush()
    i += batch
"""


def _run_and_kill(d: Path, batch: int, acks_before_kill: int) -> list[int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(d), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[int] = []
    try:
        while len(acked) < acks_before_kill:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # Lines already written before the kill are acknowledged too.
    acked.extend(int(x) for x in proc.stdout.read().split())
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_kill_9_during_appends_loses_no_acknowledged_event(tmp_path: Path) -> None:
    device = ensure_device_key(tmp_path / "device.key")
    local = seal.ensure_local_key(tmp_path / "local.key")
    guardian = X25519PrivateKey.generate()
    with Journal(tmp_path / "journal.db", device, local, clock=lambda: datetime.now(UTC)) as j:
        j.pair([guardian.public_key()])
    rng = random.Random(6)
    acked: list[int] = []
    for round_ in range(6):
        batch = 1 + (round_ % 3) * 7
        acked += _run_and_kill(tmp_path, batch, acks_before_kill=rng.randint(1, 60))
    assert acked, "the child never acknowledged anything"
    with Journal(tmp_path / "journal.db", device, local, clock=lambda: datetime.now(UTC)) as j:
        report = j.verify()
        assert report.ok, str(report)
        held = {e.seq for e in j.read(guardian)}
    missing = sorted(set(acked) - held)
    assert missing == [], f"acknowledged but lost: {missing[:10]}"
    assert held == set(range(1, max(held) + 1))
