"""kill -9 at random points while usage is written: every acknowledged interval survives."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.store.state import StateStore, to_us

WRITER = r"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from agent.core.activity import Closed
from agent.core.usage import Interval
from agent.store.state import StateStore

store = StateStore(Path(sys.argv[1]))
t = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(hours=int(sys.argv[2]))
while True:
    batch = []
    for _ in range(3):
        batch.append(Closed("", Interval(t, t + timedelta(seconds=10))))
        t += timedelta(seconds=10)
    store.commit_tick(batch)
    # Acknowledged only once commit_tick returned.
    print(int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6), flush=True)
"""


def test_sigkill_loses_no_committed_interval(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    rng = random.Random(20261122)
    acknowledged: list[int] = []
    for round_ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(round_ * 24)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the writer is up and committing; kill it mid-stream
        assert first, "the writer died before committing anything"
        time.sleep(rng.random() * 0.3)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = [int(line) for line in (first + out).split()]
        acknowledged.append(acked[-1])
    store = StateStore(db)
    ends = {row[0] for row in store.conn.execute("SELECT end_us FROM intervals")}
    for last in acknowledged:
        assert last in ends, "an acknowledged interval is missing after kill -9"
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0
