"""The filter and the nft table in a network namespace this test creates (conftest.py:
its addresses and servers). The child is uid 65534; root must be unaffected.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.netns import CHILD, MARKS, PORT, Netns

pytestmark = [*MARKS, pytest.mark.timeout(120)]

HERE = Path(__file__).parent
# The standalone profile is a policy [filter] table, whose defaults turn SafeSearch on:
# these tests are about the table and the lists, so they turn it off as before.
OFF = {"safesearch": False, "youtube": "off"}


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
            ["tcp", "10.77.0.1", 443],  # an ordinary server by an address nobody resolved
            ["udp", "10.77.0.1", 51820],  # WireGuard
            ["tcp", "10.77.0.1", 1194],  # OpenVPN over TCP
            ["udp", "10.53.0.1", 784],  # DoQ, the pre-RFC ports
            ["udp", "10.53.0.1", 8853],
            ["dns", "10.53.0.1", 53, "cdn-alias.test"],  # a CNAME chain to a blocked name
        ]
        child = netns.probe(CHILD, checks)
        root = netns.probe(0, checks)
    finally:
        netns.nft("remove")
        netns.stop(flt)
    assert child == [
        "rcode3", "10.20.30.40", "rcode3", "rcode3",
        "ECONNREFUSED", child[5], "ECONNREFUSED", child[7], "ECONNREFUSED", child[9],
        "ECONNREFUSED",
        child[11], child[12], "rcode3",
    ]
    print("child UDP rejections:", child[5], child[7], child[9], child[11], child[12])
    for i in (5, 7, 9, 11, 12):  # rejected UDP: an ICMP error, never an answer
        assert child[i] not in ("ok", "timeout"), (checks[i], child[i])
    # Root talks to the "outside" resolvers directly: they answer every name.
    assert root == ["10.20.30.40"] * 4 + ["ok"] * 9 + ["10.20.30.40"], root
    events = (netns.tmp / "events.jsonl").read_text().splitlines()
    assert any(json.loads(e)["domain"] == "www.blocked.test" for e in events)


def test_allowlist_only_reaches_only_learned_addresses(netns: Netns, lists: Path) -> None:
    flt = netns.start_filter({"allowlist_only": True, "allow": ["school.test"], **OFF}, lists)
    netns.nft("apply", "--child-uid", str(CHILD), "--port", str(PORT))
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


def test_network_filter_follows_the_profile_and_the_fixed_networks(netns: Netns, lists: Path) -> None:
    """Egress is closed in every mode; a fixed network opens without touching what was
    learned; tightening to allowlist-only drops what the looser mode learned and the flows
    it allowed; loosening keeps the table (networkfilter_script.py's steps)."""
    out = netns.run(sys.executable, str(HERE / "networkfilter_script.py"), str(lists))
    refused = "ECONNREFUSED"
    steps = json.loads(out.stdout)
    old_flow = steps.pop("allowlist_old_flow")
    assert steps == {
        "normal": ["10.77.0.2", refused], "normal_learned": True, "flow_opened": "ok",
        "fixed": ["ok"], "fixed_flow": "ok", "fixed_learned": True,
        "allowlist_learned": False,
        "allowlist": ["ok", "rcode3", "10.77.0.2", "ok"], "allowlist_new_flow": "ok",
        "epoch": True, "relaxed_flow": "ok", "relaxed": [refused, "ok"],
        "version": 4, "stopped": False, "start_allowlist_epoch": True,
    }
    assert old_flow not in ("ok", "timeout"), old_flow  # refused at once (an ICMP error)


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


def test_the_agent_says_when_a_blocked_category_has_no_list(netns: Netns, lists: Path) -> None:
    """Loud and honest: the daemon logs the category that blocks nothing and journals a
    FILTER_LIST_MISSING event (the guardian's tamper counts), and still blocks the rest."""
    agent, state = netns.start_agent('[filter]\nblock_categories = ["adult", "drugs"]\n', lists)
    try:
        assert netns.probe(CHILD, [["dns", "10.53.0.1", 53, "www.blocked.test"]]) == ["rcode3"]
    finally:
        netns.stop(agent)
    logs = "".join(p.read_text() for p in netns.tmp.glob("agent-*.log"))
    assert "drugs: no list installed" in logs and "adult: no list" not in logs
    read = netns.run(sys.executable, "-m", "agent.cli", "journal", "read", "--state", str(state),
                     "--key", str(state / "journal-local.key"))
    entries = [json.loads(line) for line in read.stdout.splitlines()]
    missing = [e["data"] for e in entries if e["kind"] == "filter_list_missing"]
    assert missing == [{"categories": ["drugs"]}], entries


def _loopback_dns_from_root(netns: Netns) -> int:
    """Packets root (the agent) sent to 127.0.0.1:53, counted by a table of the test's own."""
    out = netns.run("nft", "-j", "list", "table", "inet", "mmloopcount").stdout
    return sum(item["rule"]["expr"][-1]["counter"]["packets"] for item in json.loads(out)["nftables"]
               if "rule" in item)


def _replace(path: Path, text: str) -> None:
    """As systemd-resolved writes its file: a new one renamed over the old."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _until(netns: Netns, checks: list[list[object]], want: list[str]) -> list[str]:
    deadline = time.monotonic() + 20  # the agent looks at the file every 5 s
    got = netns.probe(CHILD, checks)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.5)
        got = netns.probe(CHILD, checks)
    return got


def test_the_agent_follows_the_networks_resolvers_and_never_itself(netns: Netns, lists: Path) -> None:
    """The release image's settings: the filter on 127.0.0.1:53 forwards to the resolvers a
    resolv.conf names (systemd-resolved's on the device), follows the file when the network
    changes, without a restart, and never forwards to itself, however the file names it."""
    netns.run("ip", "addr", "add", "10.53.0.2/32", "dev", "lo")
    other = netns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen", "10.53.0.2:53",
                        "--map", "allowed.test=10.77.0.9")
    assert other.stdout is not None and "fake upstream" in other.stdout.readline()
    counter = netns.tmp / "loopcount.nft"
    counter.write_text("table inet mmloopcount {\n chain out {\n  type filter hook output priority 0;\n"
                       "  meta skuid 0 ip daddr 127.0.0.1 udp dport 53 counter\n }\n}\n")
    netns.run("nft", "-f", str(counter))
    resolv = netns.tmp / "resolv.conf"
    resolv.write_text("# the filter itself, twice, then the network's resolver\n"
                      "nameserver 127.0.0.1\nnameserver 0.0.0.0\nnameserver 10.53.0.1\n")
    agent, _state = netns.start_agent('[filter]\nblock_categories = ["adult"]\n', lists,
                                      upstreams=("--dns-upstreams-from", str(resolv)),
                                      listen="127.0.0.1:53")
    checks: list[list[object]] = [["dns", "10.53.0.1", 53, "allowed.test"],
                                  ["dns", "10.53.0.1", 53, "www.blocked.test"]]
    try:
        assert netns.probe(CHILD, checks) == ["10.20.30.40", "rcode3"]
        _replace(resolv, "nameserver 10.53.0.2\n")  # another network
        assert _until(netns, checks, ["10.77.0.9", "rcode3"]) == ["10.77.0.9", "rcode3"]
        _replace(resolv, "nameserver 127.0.0.1\n")  # only the filter itself: no resolver
        assert _until(netns, checks, ["rcode2", "rcode3"]) == ["rcode2", "rcode3"]
        assert agent.poll() is None, "the agent restarted or died"
        assert _loopback_dns_from_root(netns) == 0, "the agent forwarded to itself"
    finally:
        netns.stop(agent)
        netns.stop(other)
        netns.run("nft", "delete", "table", "inet", "mmloopcount", check=False)
        netns.run("ip", "addr", "del", "10.53.0.2/32", "dev", "lo", check=False)
