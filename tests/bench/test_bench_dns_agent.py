"""The DNS filter inside the running agent vs the standalone filter, same list, same CPU.

The in-agent side is the real daemon (`python -m agent.daemon`, no D-Bus) with the filter
on, as a device runs it: its DNS_BLOCKED events go through the daemon's own sink (the
`TallyingSink` in front of the sealed `Journal`, agent/daemon.py) by way of the filter's
event batcher. The standalone side is `agent.filter.standalone` without an event sink
(what tests/bench/test_bench_dns.py measures). Both run in a network namespace this test
creates (the daemon installs its nft table there; root's queries are not redirected),
pinned to the same CPU, and get the same dnsperf runs, interleaved. Blocked lookups come
as a flood of distinct names (every lookup a new event: the batcher's bounds at work) and
as a household's hot set. Prints qps, the ratio in-agent / standalone (goal >= 0.9x) and
server CPU per query (all the process's threads, from /proc), saturated and at a fixed
rate; asserts no times. Afterwards it reads the agent's journal: every blocked lookup
dnsperf saw answered is itemised in a DNS_BLOCKED count or in a DNS_EVENTS_DROPPED total.

Run (root): `.venv/bin/pytest -m bench -s tests/bench/test_bench_dns_agent.py`
(MM_BENCH_DOMAINS=100000 MM_BENCH_SECONDS=4 MM_BENCH_ROUNDS=2 for a quicker run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import dnsbench as bench
from support import orphans

from agent.filter.lists import compile_all
from agent.store.events import Event, EventKind, occurrences

pytestmark = [
    pytest.mark.bench,
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.skipif(
        not all(shutil.which(x) for x in ("dnsperf", "taskset", "ip", "nft")),
        reason="needs dnsperf, taskset, iproute2 and nftables (config/deps/apt-filter.txt)",
    ),
]

AGENT_PORT, STANDALONE_PORT, UPSTREAM_PORT = 5300, 5301, 5399
PROBE = Path(__file__).parents[1] / "support" / "netprobe.py"
POLICY = """version = 1
age_band = "12-16"
timezone = "UTC"
[filter]
block_categories = ["adult"]
safesearch = false
youtube = "off"
"""


class Namespace:
    def __init__(self, tmp: Path) -> None:
        self.name = f"mmbench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.name)

    def run(self, *cmd: str) -> str:
        return subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, check=True,
                              timeout=120).stdout

    def spawn(self, *cmd: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([*self.prefix, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        orphans.stop(p, grace=60)

    def blocked_rcode(self, port: int, name: str) -> str:
        out = self.run(sys.executable, str(PROBE), "0", json.dumps([["dns", "127.0.0.1", port, name]]))
        result: list[str] = json.loads(out)
        return result[0]


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[Namespace]:
    n = Namespace(tmp_path)
    subprocess.run(["ip", "netns", "add", n.name], check=True)
    try:
        n.run("ip", "link", "set", "lo", "up")
        yield n
    finally:
        for p in n.procs:
            n.stop(p)
        subprocess.run(["ip", "netns", "del", n.name], check=False)


def wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes],
             timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"{what} exited: {err}")
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)


def measured(ns: Namespace, pid: int, port: int, datafile: Path, seconds: int,
             qps: int | None = None) -> tuple[float, float, int, int]:
    """(qps, server CPU µs per completed query, completed, sent) of one dnsperf run."""
    cpu0 = bench.cpu_seconds(pid)
    rate, _, summary = bench.dnsperf(port, datafile, seconds, qps=qps, prefix=ns.prefix)
    used = bench.cpu_seconds(pid) - cpu0
    done = bench.completed(summary)
    sent = int(summary.split("Queries sent:")[1].split()[0])
    return rate, used / max(done, 1) * 1e6, done, sent


def test_filter_in_the_agent_vs_standalone(tmp_path: Path, ns: Namespace) -> None:
    _, server_cpu = bench.cpus()
    hosts = tmp_path / "blocklist.hosts"
    names = bench.generate(hosts, bench.DOMAINS)
    rng = random.Random(7)
    flood = tmp_path / "blocked.txt"  # distinct names: each lookup is a new event
    flood.write_text("".join(f"{n} A\n" for n in rng.sample(names, min(bench.QUERY_NAMES, bench.DOMAINS))))
    hot = tmp_path / "blocked-hot.txt"  # a household's names, asked again and again
    hot.write_text("".join(flood.read_text().splitlines(keepends=True)[:bench.HOT_NAMES]))
    src = tmp_path / "src"
    (src / "adult").mkdir(parents=True)
    (src / "adult" / "list.hosts").symlink_to(hosts)
    lists = tmp_path / "lists"
    compile_all(src, lists)

    up = ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen",
                  f"127.0.0.1:{UPSTREAM_PORT}")
    state, log = tmp_path / "state", tmp_path / "agent.log"
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    agent = ns.spawn("taskset", "-c", server_cpu, sys.executable, "-m", "agent.daemon",
                     "--policy", str(policy), "--state", str(state), "--child-uid", "65534",
                     "--lists", str(lists), "--dns-upstream", f"127.0.0.1:{UPSTREAM_PORT}",
                     "--dns-listen", f"127.0.0.1:{AGENT_PORT}", "--bus-address", "none",
                     "--log-file", str(log))
    wait_for("the agent", lambda: log.exists() and "enforcing" in log.read_text(), agent)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"block_categories": ["adult"], "safesearch": False, "youtube": "off"}))
    ready = tmp_path / "ready"
    standalone = ns.spawn("taskset", "-c", server_cpu, sys.executable, "-m",
                          "agent.filter.standalone", "--lists", str(lists), "--upstream",
                          f"127.0.0.1:{UPSTREAM_PORT}", "--listen", f"127.0.0.1:{STANDALONE_PORT}",
                          "--profile-json", str(profile), "--ready-file", str(ready))
    wait_for("the standalone filter", ready.exists, standalone)
    assert up.poll() is None
    servers = {"standalone": (STANDALONE_PORT, standalone.pid), "agent": (AGENT_PORT, agent.pid)}
    for port, _ in servers.values():
        assert ns.blocked_rcode(port, names[0]) == "rcode3", "the list is not in force"
    agent_done, agent_sent = 1, 1  # the probe

    for port, pid in servers.values():  # warm-up: first-touch page faults are not measured
        _, _, done, sent = measured(ns, pid, port, flood, 2)
        if port == AGENT_PORT:
            agent_done, agent_sent = agent_done + done, agent_sent + sent
    runs: dict[str, dict[str, list[float]]] = {s: {} for s in servers}
    for label, datafile, qps, rounds in (("flood", flood, None, bench.ROUNDS), ("hot", hot, None, bench.ROUNDS),
                                         ("fixed", flood, bench.FIXED_QPS, 1)):
        for _ in range(rounds):
            for name, (port, pid) in servers.items():
                time.sleep(1)
                rate, cpu_us, done, sent = measured(ns, pid, port, datafile, bench.RUN_SECONDS, qps)
                runs[name].setdefault(f"{label}_qps", []).append(rate)
                runs[name].setdefault(f"{label}_cpu_us", []).append(cpu_us)
                if name == "agent":
                    agent_done, agent_sent = agent_done + done, agent_sent + sent
                print(f"  {name} {label}: {rate:,.0f} qps, {cpu_us:.2f} µs CPU/query", flush=True)
    rss = {name: bench.rss_kib(pid)[0] / 1024 for name, (_, pid) in servers.items()}

    ns.stop(agent)  # the batcher writes what it holds on the way out
    assert agent.returncode == 0, agent.stderr.read().decode() if agent.stderr else ""
    read = ns.run(sys.executable, "-m", "agent.cli", "journal", "read", "--state", str(state),
                  "--key", str(state / "journal-local.key"))
    entries = [json.loads(line) for line in read.splitlines()]
    # a name's event carries its `count` of lookups; past the flood gate a site's aggregate
    # carries the `suppressed` lookups (agent.store.floodsink): occurrences() reads either
    itemised = sum(occurrences(Event(EventKind.DNS_BLOCKED, datetime.now(UTC), e["data"]))
                   for e in entries if e["kind"] == "dns_blocked")
    dropped = sum(e["data"]["lookups"] for e in entries if e["kind"] == "dns_events_dropped")
    events = sum(1 for e in entries if e["kind"] == "dns_blocked")
    drop_events = sum(1 for e in entries if e["kind"] == "dns_events_dropped")

    print()
    print(f"domains {bench.DOMAINS:,}; {bench.ROUNDS} interleaved {bench.RUN_SECONDS} s runs (fixed rate: one, "
          f"{bench.FIXED_QPS} qps); server CPU {server_cpu}; CPU per query = the process's user+sys "
          f"over dnsperf's completed queries")
    print(f"{'metric':<18}{'standalone':>12}{'agent':>12}{'ratio':>8}")
    results: dict[str, dict[str, float]] = {}
    for key in runs["agent"]:
        pick = statistics.median
        s, a = pick(runs["standalone"][key]), pick(runs["agent"][key])
        results[key] = {"standalone": s, "agent": a, "ratio": a / s if s else float("nan")}
        print(f"{key:<18}{s:>12.2f}{a:>12.2f}{a / s if s else float('nan'):>8.2f}")
    print(f"{'rss_mib':<18}{rss['standalone']:>12.1f}{rss['agent']:>12.1f}")
    print(f"agent journal: {events:,} dns_blocked events itemising {itemised:,} lookups, "
          f"{drop_events} dns_events_dropped events for {dropped:,} more; dnsperf: "
          f"{agent_done:,} answered of {agent_sent:,} sent")
    print("goal: in-agent blocked qps >= 0.9x standalone (flood_qps and hot_qps ratios)")
    print("BENCH-JSON " + json.dumps({"results": results, "rss_mib": rss, "domains": bench.DOMAINS,
                                      "journal": {"events": events, "itemised": itemised,
                                                  "drop_events": drop_events, "dropped": dropped},
                                      "answered": agent_done, "sent": agent_sent}))
    # Nothing silently lost (not a timing assertion): every answered lookup is accounted for.
    assert agent_done <= itemised + dropped <= agent_sent
