"""What the child's closed egress costs per packet: the same sends as the child with the
whole table, with the table minus its egress rules (the rules `agent.filter.nft` tags
`EGRESS`), and with no table, round-robin in one namespace; CPU per datagram and ratios
printed, nothing asserted about time (figures in RESULTS.md).

Reproduce (root): `.venv/bin/pytest -m bench tests/bench/test_bench_egress.py -s`
(`MM_BENCH_PACKETS=N` per run, `MM_BENCH_ROUNDS=R`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import pytest
from support.netns import CHILD, MARKS, PORT, Netns, namespace

pytestmark = [pytest.mark.bench, *MARKS, pytest.mark.timeout(900)]

SENDER = Path(__file__).with_name("egress_sender.py")
SERVER = "10.77.0.2"  # a learned address
PACKETS = int(os.environ.get("MM_BENCH_PACKETS", "100000"))
ROUNDS = int(os.environ.get("MM_BENCH_ROUNDS", "6"))
KINDS = ("answered", "unanswered", "flows")
# Loads one variant of the table inside the namespace (the reference drops the egress rules).
LOADER = """
import json, sys
from agent.filter import nft
doc = nft.ruleset(nft.NftSettings(child_uids=({child},), filter_port={port}))
if sys.argv[1] == "no-egress":
    doc["nftables"] = [c for c in doc["nftables"]
                       if c.get("add", {{}}).get("rule", {{}}).get("comment") != nft.EGRESS]
n = nft.Nft()
n.run(nft.removal())
if sys.argv[1] != "none":
    n.run(doc)
    nft.NftSetLearner(n).learn([(bytes([10, 77, 0, 2]), 3600)])
"""


def load(ns: Netns, variant: str) -> None:
    ns.run(sys.executable, "-c", LOADER.format(child=CHILD, port=PORT), variant)
    listing = ns.run("nft", "list", "ruleset").stdout
    assert ('comment "egress"' in listing) == (variant == "egress"), (variant, listing)
    assert ("10.77.0.2" in listing) == (variant != "none"), (variant, listing)


def cpu(ns: Netns, kind: str) -> float:
    count = PACKETS if kind != "flows" else PACKETS // 10
    out = ns.run(sys.executable, str(SENDER), str(CHILD), SERVER, str(count), kind)
    return float(out.stdout) / count


def test_egress_cost_per_packet(tmp_path: Path) -> None:
    variants = ("none", "no-egress", "egress")
    seen: dict[tuple[str, str], list[float]] = {(v, k): [] for v in variants for k in KINDS}
    with namespace(tmp_path, "mmegbench") as ns:
        ns.run("ip", "addr", "add", f"{SERVER}/32", "dev", "lo")
        ns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=5", check=False)
        for r in range(ROUNDS):  # the order turns each round, so no variant always goes first
            for variant in variants[r % 3:] + variants[:r % 3]:
                load(ns, variant)
                for kind in KINDS:
                    seen[variant, kind].append(cpu(ns, kind))
    rows = {key: statistics.median(v) * 1e6 for key, v in seen.items()}
    print(f"\nchild's UDP sends, CPU µs per datagram (median of {ROUNDS} runs of {PACKETS}; "
          f"'flows' {PACKETS // 10} new flows)")
    print("| kind | no table | table without egress | whole table | egress / without | egress / none |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        none, ref, full = (rows[v, kind] for v in variants)
        print(f"| {kind} | {none:.2f} | {ref:.2f} | {full:.2f} | {full / ref:.3f} | {full / none:.3f} |")
    print(json.dumps({f"{v}/{k}": round(x, 3) for (v, k), x in rows.items()}))
    assert all(x > 0 for x in rows.values())


LEARN_COST = """
import time
from agent.filter import nft
n = nft.Nft()
nft.apply(nft.NftSettings(child_uids=({child},), filter_port={port}), n)
learner = nft.NftSetLearner(n)
count = {count}
addresses = [bytes([10, 100 + i // 65536, (i // 256) % 256, i % 256]) for i in range(count)]
start = time.process_time()
for a in addresses:  # a new address each: one transaction each
    learner.learn([(a, 300)])
new = (time.process_time() - start) / count
start = time.process_time()
for a in addresses:  # the same again within their TTL: no transaction
    learner.learn([(a, 300)])
known = (time.process_time() - start) / count
assert learner.transactions == count, learner.transactions
print(new, known)
"""


def test_learning_cost_on_the_forwarded_path(tmp_path: Path) -> None:
    """What learning in every mode costs the DNS thread: forwarded lookups at a fixed 2k qps
    through the standalone filter with and without the nft learner (the filter's own CPU
    per query, interleaved rounds), and one learner transaction for a new address."""
    from support.dnsbench import FIXED_QPS, cpu_seconds, dnsperf

    if shutil.which("dnsperf") is None or shutil.which("taskset") is None:
        pytest.skip("needs dnsperf and taskset")
    data = tmp_path / "forwarded.txt"
    data.write_text("".join(f"fwd{i}.allowed-{i % 89}.example A\n" for i in range(50000)))
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"safesearch": False, "youtube": "off"}))
    lists = tmp_path / "lists"
    lists.mkdir()
    seconds = int(os.environ.get("MM_BENCH_SECONDS", "4"))
    with namespace(tmp_path, "mmlearnbench") as ns:
        ns.run("ip", "addr", "add", "10.53.0.1/32", "dev", "lo")
        up = ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen", "10.53.0.1:53")
        assert up.stdout is not None and "fake upstream" in up.stdout.readline()
        new, known = map(float, ns.run(sys.executable, "-c", LEARN_COST.format(
            child=CHILD, port=PORT + 1, count=2000)).stdout.split())
        pids: dict[str, int] = {}
        for name, port, extra in (("without learner", PORT, ()), ("learning", PORT + 1, ("--nft-learn",))):
            ready = tmp_path / f"ready-{port}"
            p = ns.spawn(sys.executable, "-m", "agent.filter.standalone", "--lists", str(lists),
                         "--upstream", "10.53.0.1:53", "--listen", f"127.0.0.1:{port}",
                         "--profile-json", str(profile), "--ready-file", str(ready), *extra)
            deadline = time.monotonic() + 30
            while not ready.exists():
                assert p.poll() is None and time.monotonic() < deadline, "the filter did not start"
                time.sleep(0.05)
            pids[name] = p.pid
        ports = {"without learner": PORT, "learning": PORT + 1}
        per_query: dict[str, list[float]] = {name: [] for name in ports}
        for r in range(ROUNDS // 2 or 1):
            for name in list(ports)[r % 2:] + list(ports)[:r % 2]:
                before = cpu_seconds(pids[name])
                _qps, _lat, summary = dnsperf(ports[name], data, seconds, qps=FIXED_QPS,
                                              prefix=("ip", "netns", "exec", ns.name))
                done = int(summary.split("Queries completed:")[1].split()[0])
                per_query[name].append((cpu_seconds(pids[name]) - before) / done * 1e6)
        listing = ns.run("nft", "list", "set", "inet", "minormode", "allow4").stdout
    assert "10.20.30.40" in listing  # the learning filter did learn
    med = {name: statistics.median(v) for name, v in per_query.items()}
    print(f"\nforwarded lookups at {FIXED_QPS} qps, the filter's CPU µs per query "
          f"(median of {len(per_query['learning'])} runs of {seconds} s):")
    print(f"  without learner {med['without learner']:.1f}, learning {med['learning']:.1f}, "
          f"ratio {med['learning'] / med['without learner']:.3f}")
    print(f"  learner: a new address {new * 1e6:.0f} µs CPU (one transaction), a known one "
          f"{known * 1e6:.2f} µs")
