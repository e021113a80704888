"""A network namespace a test creates, and the real filter, daemon and probes inside it.

The probes (`netprobe.py`, as any uid) and the "outside" servers (`netservers.py`) run as
processes of their own inside the namespace; nothing here touches the host's network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from support import orphans

HERE = Path(__file__).parent
PROBE = HERE / "netprobe.py"
SERVERS = HERE / "netservers.py"
CHILD = 65534
PORT = 5300
# The marks every namespace test module carries (with a timeout of its own).
MARKS = (
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.skipif(shutil.which("nft") is None or shutil.which("ip") is None,
                       reason="needs nftables and iproute2"),
)


class Netns:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                              text=True, check=check, timeout=60)

    def spawn(self, *cmd: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[str]) -> None:
        orphans.stop(p, grace=5)
        if p in self.procs:
            self.procs.remove(p)

    def probe(self, uid: int, checks: list[list[object]]) -> list[str]:
        out = self.run(sys.executable, str(PROBE), str(uid), json.dumps(checks))
        result: list[str] = json.loads(out.stdout)
        return result

    def nft(self, *args: str) -> None:
        out = self.run(sys.executable, "-m", "agent.filter.nft", *args, check=False)
        assert out.returncode == 0, out.stderr

    def start_agent(self, filter_table: str, lists: Path, *extra: str,
                    upstreams: tuple[str, ...] = ("--dns-upstream", "10.53.0.1:53"),
                    listen: str = f"127.0.0.1:{PORT}",
                    policy_text: str | None = None) -> tuple[subprocess.Popen[str], Path]:
        """The real daemon in development mode with the DNS filter on; returns once it
        enforces (the process and its state directory). The policy is the 12-16 band's
        with `filter_table`, or `policy_text` whole."""
        state = self.tmp / f"agent-state-{uuid.uuid4().hex}"
        policy = self.tmp / f"policy-{uuid.uuid4().hex}.toml"
        policy.write_text(policy_text if policy_text is not None else
                          'version = 1\nage_band = "12-16"\ntimezone = "Asia/Shanghai"\n' + filter_table)
        log = self.tmp / f"agent-{uuid.uuid4().hex}.log"
        agent = self.spawn(sys.executable, "-m", "agent.daemon", "--dev", "--policy", str(policy),
                           "--state", str(state), "--child-uid", str(CHILD), "--lists", str(lists),
                           *upstreams, "--dns-listen", listen,
                           "--log-file", str(log), *extra)
        deadline = time.monotonic() + 30
        while "enforcing" not in (log.read_text() if log.exists() else ""):
            assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        return agent, state

    def ask(self, name: str, port: int = PORT) -> str:
        """The filter's answer to an A question from root: an address, "rcode3", ..."""
        return self.probe(0, [["dns", "127.0.0.1", port, name]])[0]

    def start_filter(self, profile: dict[str, object], lists: Path,
                     *extra: str) -> subprocess.Popen[str]:
        prof = self.tmp / f"profile-{uuid.uuid4().hex}.json"
        prof.write_text(json.dumps(profile))
        ready = self.tmp / f"ready-{uuid.uuid4().hex}"
        p = self.spawn(sys.executable, "-m", "agent.filter.standalone", "--lists", str(lists),
                       "--upstream", "10.53.0.1:53", "--listen", f"127.0.0.1:{PORT}",
                       "--listen", f"[::1]:{PORT}", "--profile-json", str(prof),
                       "--ready-file", str(ready), "--nft-learn",
                       "--events", str(self.tmp / "events.jsonl"), *extra)
        deadline = time.monotonic() + 20
        while not ready.exists():
            if p.poll() is not None:
                raise AssertionError(f"filter exited: {p.stderr.read() if p.stderr else ''}")
            assert time.monotonic() < deadline, "filter did not become ready"
            time.sleep(0.05)
        return p


class Flow:
    """One UDP flow of a probe process running as `uid` (`prefix`: e.g. `ip netns exec NS`,
    or nothing inside the namespace already): `first` is its opening echo, `again()` another
    on the same socket."""

    def __init__(self, uid: int, host: str, port: int, prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen([*prefix, sys.executable, str(PROBE), str(uid), "--flow",
                                      host, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first = self.proc.stdout.readline().strip()

    def again(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextmanager
def namespace(tmp: Path, prefix: str = "mm") -> Iterator[Netns]:
    """A fresh namespace with `lo` up; every process started in it stopped, then deleted."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name, tmp)
    try:
        ns.run("ip", "link", "set", "lo", "up")
        yield ns
    finally:
        for p in list(ns.procs):
            ns.stop(p)
        subprocess.run(["ip", "netns", "del", name], check=False)
