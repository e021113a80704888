"""Idle wake-ups of the whole running agent (goal: <= 1 a second), beside references.

The agent is the real daemon in development mode at real speed (`--speed 1`: a private
bus with a fake logind, the session layer, the spending broker) with the DNS filter and
its nft table on, inside a network namespace this test creates, and the exec gate on a
tmpfs the test mounts (the device marks "/"; the gate is a process of its own, counted
with the agent, and the installs watch follows the host's desktop entries); nothing asks
it anything. Its wake-ups are the context switches of all its threads (voluntary +
involuntary, from /proc/PID/task/*/status) over the same window as two references
measured at the same time: `sleep` (the floor) and a bare asyncio loop sleeping. Prints
the rates per thread.

The guard is a count, not a time: a thread that sleeps until its next deadline switches
out once per wake-up, so over N seconds the agent's voluntary switches are bounded by its
deadlines in that window (the agent's 5 s tick, the display's 5 s poll, the session's
minute, and a little slack for the start of the window); polling every 0.1 s or every
second, as before, is 10-25 times that.

Run (root): `.venv/bin/pytest -m bench -s tests/bench/test_bench_idle.py`
(MM_BENCH_IDLE_SECONDS, default 30).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from support import orphans
from support.tmpfs import mounted_tmpfs

ROOT = Path(__file__).parents[2]
SECONDS = float(os.environ.get("MM_BENCH_IDLE_SECONDS", "30"))
GOAL_PER_SECOND = 1.0

pytestmark = [
    pytest.mark.bench,
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.skipif(not all(shutil.which(x) for x in ("ip", "nft", "dbus-daemon")),
                       reason="needs iproute2, nftables and dbus-daemon"),
]


def switches(pid: int) -> dict[str, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each thread of a process."""
    out: dict[str, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        out[f"{task.name} {fields['Name'].strip()}"] = (
            int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"]))
    return out


def wait_for(what: str, ready: object, proc: subprocess.Popen[bytes], bound: float = 120) -> None:
    deadline = time.monotonic() + bound
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, f"{what} exited"
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)


def gate_of(agent: int) -> int:
    """The exec gate process the agent's supervisor started."""
    for task in Path(f"/proc/{agent}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"agent.execgate.gate" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("the agent runs no exec gate process")


def test_idle_agent_wakeups(tmp_path: Path) -> None:
    ns = f"mmidle-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    procs: list[subprocess.Popen[bytes]] = []
    with mounted_tmpfs("mode=755,size=16m", prefix="mm-idle-gate-") as gated:
        _measure(tmp_path, ns, procs, gated)


def _measure(tmp_path: Path, ns: str, procs: list[subprocess.Popen[bytes]], gated: Path) -> None:
    try:
        prefix = ["ip", "netns", "exec", ns]
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True)
        src = tmp_path / "src"
        src.mkdir()
        (src / "adult.txt").write_text("blocked.example\n")
        subprocess.run([sys.executable, "-m", "agent.cli", "lists", "compile", "--src", str(src),
                        "--out", str(tmp_path / "lists"), "--partial", "--quiet"], cwd=ROOT, check=True,
                       capture_output=True)
        policy = tmp_path / "policy.toml"
        policy.write_text((ROOT / "config" / "policies" / "8-12.toml").read_text())
        log = tmp_path / "agent.log"

        def spawn(*cmd: str, out: Path | None = None) -> subprocess.Popen[bytes]:
            sink = open(out, "wb") if out is not None else subprocess.DEVNULL  # noqa: SIM115
            p = subprocess.Popen(list(cmd), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
            procs.append(p)
            return p

        spawn(*prefix, sys.executable, "-m", "agent.filter.fakeupstream", "--listen", "127.0.0.1:5399")
        agent = spawn(*prefix, sys.executable, "-m", "agent.daemon", "--dev", "--speed", "1",
                      "--policy", str(policy), "--state", str(tmp_path / "state"), "--child-uid", "65534",
                      "--lists", str(tmp_path / "lists"), "--dns-upstream", "127.0.0.1:5399",
                      "--dns-listen", "127.0.0.1:5300", "--exec-gate-mark", str(gated), out=log)
        sleeper = spawn("sleep", "3600")
        loop = spawn(sys.executable, "-c", "import asyncio; asyncio.run(asyncio.sleep(3600))")
        wait_for("the agent", lambda: log.exists() and "enforcing policy version" in log.read_text(), agent)
        # `ip netns exec` execs the daemon: the pid is the agent's own.
        pids = {"agent": agent.pid, "exec gate": gate_of(agent.pid), "sleep": sleeper.pid,
                "asyncio loop": loop.pid}
        before = {name: switches(pid) for name, pid in pids.items()}
        began = time.monotonic()
        time.sleep(SECONDS)  # the measurement window itself: the agent must be left alone
        after = {name: switches(pid) for name, pid in pids.items()}
        window = time.monotonic() - began
        totals: dict[str, tuple[int, int]] = {}
        print(f"\n  idle wake-ups over {window:.1f} s (context switches per second, all threads):")
        for name in pids:
            vol = sum(after[name][t][0] - before[name].get(t, (0, 0))[0] for t in after[name])
            inv = sum(after[name][t][1] - before[name].get(t, (0, 0))[1] for t in after[name])
            totals[name] = (vol, inv)
            print(f"  {name:>13}: {(vol + inv) / window:6.2f}/s ({vol} voluntary, {inv} involuntary)")
            if name in ("agent", "exec gate"):
                for t in sorted(after[name]):
                    d = after[name][t][0] - before[name].get(t, (0, 0))[0]
                    if d:
                        print(f"  {'':>15}thread {t}: {d / window:.2f}/s")
        both = sum(sum(totals[n]) for n in ("agent", "exec gate")) / window
        print(f"  agent with its exec gate: {both:.2f}/s (goal <= {GOAL_PER_SECOND:.0f}/s)")
        # the goal, on wake-ups (voluntary switches: a preemption is not one): the
        # agent and its gate together at most once a second. The agent's known deadlines
        # are its tick and the display poll (5 s each); the rest of its 20-26 a 30 s window
        # (3 runs, 2026-12-03) are its minute timers and the development session's bus. A
        # bound of 1.5x those deadlines failed one CI run at 26 (of 24): it pinned our own
        # estimate, not the goal. The gate and its supervisor sleep until an exec (a look a
        # minute), the installs watch until a desktop entry or an app's directory changes.
        woke = totals["agent"][0] + totals["exec gate"][0]
        assert woke <= window * GOAL_PER_SECOND, f"the idle agent and gate woke {woke} times in {window:.0f} s"
        assert totals["exec gate"][0] <= window / 60 + 2, "the idle exec gate wakes"
    finally:
        for p in procs:
            orphans.stop(p)
        subprocess.run(["ip", "netns", "del", ns], check=False)
