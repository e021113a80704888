"""The filter and the nft table in a network namespace this test creates.

Inside the namespace (only `lo`, with extra addresses standing for the outside world):
10.53.0.1/fd53::1 run a fake "outside" resolver on 53 (also the filter's upstream),
10.99.0.1 is listed as a DoH resolver, 10.77.0.1/.2 are ordinary servers. The child is
uid 65534; root must be unaffected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.filter.lists import compile_all

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.skipif(shutil.which("nft") is None or shutil.which("ip") is None,
                       reason="needs nftables and iproute2"),
    pytest.mark.timeout(120),
]

HERE = Path(__file__).parent
# The standalone profile is a policy [filter] table, whose defaults turn SafeSearch on:
# these tests are about the table and the lists, so they turn it off as before.
OFF = {"safesearch": False, "youtube": "off"}
CHILD = 65534
PORT = 5300


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
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def probe(self, uid: int, checks: list[list[object]]) -> list[str]:
        out = self.run(sys.executable, str(HERE / "probe.py"), str(uid), json.dumps(checks))
        result: list[str] = json.loads(out.stdout)
        return result

    def nft(self, *args: str) -> None:
        out = self.run(sys.executable, "-m", "agent.filter.nft", *args, check=False)
        assert out.returncode == 0, out.stderr

    def start_agent(self, filter_table: str, lists: Path,
                    *extra: str) -> tuple[subprocess.Popen[str], Path]:
        """The real daemon in development mode with the DNS filter on; returns once it
        enforces (the process and its state directory)."""
        state = self.tmp / f"agent-state-{uuid.uuid4().hex}"
        policy = self.tmp / f"policy-{uuid.uuid4().hex}.toml"
        policy.write_text('version = 1\nage_band = "12-16"\ntimezone = "Asia/Shanghai"\n'
                          + filter_table)
        log = self.tmp / f"agent-{uuid.uuid4().hex}.log"
        agent = self.spawn(sys.executable, "-m", "agent.daemon", "--dev", "--policy", str(policy),
                           "--state", str(state), "--child-uid", str(CHILD), "--lists", str(lists),
                           "--dns-upstream", "10.53.0.1:53", "--dns-listen", f"127.0.0.1:{PORT}",
                           "--log-file", str(log), *extra)
        deadline = time.monotonic() + 30
        while "enforcing" not in (log.read_text() if log.exists() else ""):
            assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        return agent, state

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


@pytest.fixture(scope="module")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Netns]:
    tmp = tmp_path_factory.mktemp("netns")
    name = f"mm5-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name, tmp)
    try:
        ns.run("ip", "link", "set", "lo", "up")
        for addr in ("10.53.0.1/32", "10.99.0.1/32", "10.77.0.1/32", "10.77.0.2/32"):
            ns.run("ip", "addr", "add", addr, "dev", "lo")
        ns.run("ip", "-6", "addr", "add", "fd53::1/128", "dev", "lo", "nodad")
        up = ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen",
                      "10.53.0.1:53", "--map", "school.test=10.77.0.2",
                      "--map", "www.school.test=10.77.0.2")
        assert up.stdout is not None and "fake upstream" in up.stdout.readline()
        up6 = ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen",
                       "[fd53::1]:53")
        assert up6.stdout is not None and "fake upstream" in up6.stdout.readline()
        srv = ns.spawn(sys.executable, str(HERE / "servers.py"), "10.99.0.1:443/tcp",
                       "10.99.0.1:443/udp", "10.77.0.1:443/tcp", "10.77.0.2:443/tcp",
                       "10.53.0.1:853/tcp", "10.53.0.1:853/udp", "10.77.0.1:51820/udp",
                       "10.77.0.1:1194/tcp")
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        yield ns
    finally:
        for p in list(ns.procs):
            ns.stop(p)
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("lists")
    src = tmp / "src"
    src.mkdir()
    (src / "adult.txt").write_text("blocked.test\n")
    out = tmp / "out"
    compile_all(src, out)
    out.chmod(0o755)
    return out


def test_child_is_filtered_and_cannot_go_around_it(netns: Netns, lists: Path) -> None:
    flt = netns.start_filter({"block_categories": ["adult"], **OFF}, lists)
    netns.nft("apply", "--child-uid", str(CHILD), "--port", str(PORT), "--doh", "10.99.0.1")
    try:
        checks: list[list[object]] = [
            ["dns", "10.53.0.1", 53, "www.blocked.test"],  # straight to an outside resolver
            ["dns", "10.53.0.1", 53, "allowed.test"],
            ["dnstcp", "10.53.0.1", 53, "www.blocked.test"],
            ["dns", "fd53::1", 53, "www.blocked.test"],  # IPv6 resolver
            ["tcp", "10.53.0.1", 853],  # DoT
            ["udp", "10.53.0.1", 853],  # DoQ
            ["tcp", "10.99.0.1", 443],  # DoH resolver address
            ["udp", "10.99.0.1", 443],  # DoH over HTTP/3
            ["tcp", "10.77.0.1", 443],  # an ordinary server
            ["udp", "10.77.0.1", 51820],  # WireGuard
            ["tcp", "10.77.0.1", 1194],  # OpenVPN over TCP
        ]
        child = netns.probe(CHILD, checks)
        root = netns.probe(0, checks)
    finally:
        netns.nft("remove")
        netns.stop(flt)
    assert child == [
        "rcode3", "10.20.30.40", "rcode3", "rcode3",
        "ECONNREFUSED", child[5], "ECONNREFUSED", child[7], "ok", child[9], "ECONNREFUSED",
    ]
    print("child UDP rejections:", child[5], child[7], child[9])
    for i in (5, 7, 9):  # rejected UDP: an ICMP error, never an answer
        assert child[i] not in ("ok", "timeout"), (checks[i], child[i])
    # Root talks to the "outside" resolvers directly: they answer every name.
    assert root == ["10.20.30.40"] * 4 + ["ok"] * 7, root
    events = (netns.tmp / "events.jsonl").read_text().splitlines()
    assert any(json.loads(e)["domain"] == "www.blocked.test" for e in events)


def test_allowlist_only_reaches_only_learned_addresses(netns: Netns, lists: Path) -> None:
    flt = netns.start_filter({"allowlist_only": True, "allow": ["school.test"], **OFF}, lists)
    netns.nft("apply", "--child-uid", str(CHILD), "--port", str(PORT), "--allowlist-only")
    try:
        before = netns.probe(CHILD, [["tcp", "10.77.0.2", 443]])
        checks: list[list[object]] = [
            ["dns", "10.53.0.1", 53, "www.school.test"],
            ["tcp", "10.77.0.2", 443],  # learned from the allowed answer
            ["tcp", "10.77.0.1", 443],  # an IP literal nobody resolved
            ["dns", "10.53.0.1", 53, "other.test"],
        ]
        child = netns.probe(CHILD, checks)
        root = netns.probe(0, [["tcp", "10.77.0.1", 443]])
        listing = netns.run("nft", "list", "set", "inet", "minormode", "allow4").stdout
    finally:
        netns.nft("remove")
        netns.stop(flt)
    assert before == ["ECONNREFUSED"]
    assert child == ["10.77.0.2", "ok", "ECONNREFUSED", "rcode3"]
    assert root == ["ok"]
    assert "10.77.0.2" in listing and "10.77.0.1" not in listing


def test_remove_leaves_no_table(netns: Netns) -> None:
    netns.nft("apply", "--child-uid", str(CHILD), "--port", str(PORT))
    netns.nft("remove")
    netns.nft("remove")  # idempotent
    assert "minormode" not in netns.run("nft", "list", "tables").stdout
    assert netns.probe(CHILD, [["tcp", "10.99.0.1", 443]]) == ["ok"]


def test_filter_with_its_own_table_removes_it_on_exit(netns: Netns, lists: Path) -> None:
    flt = netns.start_filter({"block_categories": ["adult"], **OFF}, lists, "--child-uid", str(CHILD))
    try:
        child = netns.probe(CHILD, [["dns", "10.53.0.1", 53, "blocked.test"],
                                    ["tcp", "10.53.0.1", 853]])
        tables = netns.run("nft", "list", "tables").stdout
    finally:
        netns.stop(flt)
    assert child == ["rcode3", "ECONNREFUSED"]
    assert "inet minormode" in tables
    assert flt.returncode == 0
    assert "minormode" not in netns.run("nft", "list", "tables").stdout
    assert netns.probe(CHILD, [["dns", "10.53.0.1", 53, "blocked.test"]]) == ["10.20.30.40"]


def test_network_filter_follows_allowlist_only_switch(netns: Netns, lists: Path) -> None:
    out = netns.run(sys.executable, str(HERE / "networkfilter_script.py"), str(lists))
    assert json.loads(out.stdout) == {
        "start": False, "allowlist": True, "version": 2, "relaxed": False, "stopped": False,
    }


def test_the_agent_daemon_runs_the_filter_from_its_policy(netns: Netns, lists: Path) -> None:
    """The real daemon wires the filter: the policy's categories and its own block list hold
    for the child, root is unaffected, and the table goes when the agent stops."""
    agent, _state = netns.start_agent(
        '[filter]\nblock_categories = ["adult"]\nblock = ["guardian-says-no.test"]\n', lists)
    try:
        checks: list[list[object]] = [
            ["dns", "10.53.0.1", 53, "www.blocked.test"],
            ["dns", "10.53.0.1", 53, "guardian-says-no.test"],
            ["dns", "10.53.0.1", 53, "allowed.test"],
            ["tcp", "10.53.0.1", 853],
        ]
        assert netns.probe(CHILD, checks) == ["rcode3", "rcode3", "10.20.30.40", "ECONNREFUSED"]
        assert netns.probe(0, checks) == ["10.20.30.40"] * 3 + ["ok"]
    finally:
        netns.stop(agent)
    out = netns.run("nft", "list", "tables", check=False)
    assert "minormode" not in out.stdout, "the agent left its nft table behind"


def test_the_agents_dns_blocks_carry_its_trusted_time(netns: Netns, lists: Path) -> None:
    """The daemon hands the filter the trusted clock its journal stamps with: on a simulated
    timeline years from the wall clock, a DNS block is journalled at simulated time."""
    start = datetime(2030, 1, 7, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    agent, state = netns.start_agent('[filter]\nblock_categories = ["adult"]\n', lists,
                                     "--start", start.isoformat())
    try:
        assert netns.probe(CHILD, [["dns", "10.53.0.1", 53, "www.blocked.test"]]) == ["rcode3"]
    finally:
        netns.stop(agent)
    read = netns.run(sys.executable, "-m", "agent.cli", "journal", "read", "--state", str(state),
                     "--key", str(state / "journal-local.key"))
    entries = [json.loads(line) for line in read.stdout.splitlines()]
    blocked = [datetime.fromisoformat(e["at"]) for e in entries
               if e["kind"] == "dns_blocked" and e["data"]["domain"] == "www.blocked.test"]
    started = [datetime.fromisoformat(e["at"]) for e in entries if e["kind"] == "agent_start"]
    assert len(blocked) == 1 and len(started) == 1, entries
    # At 60x, the minute or so this test runs is an hour at most of simulated time.
    assert started[0] <= blocked[0] < start + timedelta(hours=2), (start, started, blocked)
    assert abs(datetime.now(UTC) - blocked[0]) > timedelta(days=300)
