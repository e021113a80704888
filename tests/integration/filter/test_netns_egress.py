"""The child's closed egress, tried as the child would, in a namespace this test creates
(conftest.py: the outside world's addresses, resolvers and servers).

Every way around the filter fails in every mode: other resolvers on any port, DoT and DoQ
(even to an address the child may reach), DoH and a VPN to an address nobody resolved,
IP literals (IPv4 and IPv6, TCP and UDP), a CNAME chain into a blocked name. Allowed
browsing reaches its addresses on any port, and the calls app's pattern works through the
STUN and TURN servers it resolves while its direct ICE checks to a peer's address fail.
Root, running the same checks, is unaffected.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from support.netns import CHILD, MARKS, Netns

pytestmark = [*MARKS, pytest.mark.timeout(180)]

OFF = {"safesearch": False, "youtube": "off"}
MODES = {
    "categories": {"block_categories": ["adult"], **OFF},
    "allowlist-only": {"allowlist_only": True, "allow": ["school.test", "calls.test"], **OFF},
}

# Looked up first, through the table's redirect: what the child may then reach.
RESOLVE: list[tuple[list[object], str]] = [
    (["dns", "10.53.0.1", 53, "www.school.test"], "10.77.0.2"),
    (["dns6", "10.53.0.1", 53, "www6.school.test"], "fd77::2"),
    (["dns", "10.53.0.1", 53, "stun.calls.test"], "10.77.0.4"),
    (["dns", "10.53.0.1", 53, "turn.calls.test"], "10.77.0.5"),
    (["dns6", "10.53.0.1", 53, "turn6.calls.test"], "fd77::5"),
]
BROWSING: list[list[object]] = [  # learned addresses, any port, TCP and UDP, v4 and v6
    ["tcp", "10.77.0.2", 443], ["udp", "10.77.0.2", 443], ["tcp", "10.77.0.2", 8443],
    ["udp", "10.77.0.2", 40000], ["tcp", "fd77::2", 443], ["udp", "fd77::2", 443],
    ["udp", "fd77::2", 40000],
]
CALLS_WORK: list[list[object]] = [  # STUN binding, TURN over UDP and TLS, the relay's ports
    ["udp", "10.77.0.4", 3478], ["udp", "10.77.0.5", 3478], ["tcp", "10.77.0.5", 443],
    ["udp", "10.77.0.5", 49152], ["udp", "fd77::5", 3478],
]
CALLS_BLOCKED: list[list[object]] = [  # ICE checks straight to a peer's candidate addresses
    ["udp", "10.77.0.3", 50000], ["udp", "fd77::3", 50000],
]
BYPASSES: list[list[object]] = [
    ["dns", "10.53.0.1", 5353, "www.blocked.test"],  # an outside resolver, another port
    ["dns", "10.53.0.1", 40053, "www.blocked.test"],  # ... a random one
    ["dns", "fd53::1", 5353, "www.blocked.test"],  # ... over IPv6
    ["tcp", "10.53.0.1", 853],  # DoT
    ["udp", "10.53.0.1", 853], ["udp", "10.53.0.1", 784], ["udp", "10.53.0.1", 8853],  # DoQ
    ["tcp", "10.77.0.2", 853], ["udp", "10.77.0.2", 853],  # DoT/DoQ to a learned address
    ["tcp", "10.88.0.1", 443], ["udp", "10.88.0.1", 443],  # DoH to an unlisted resolver by IP
    ["udp", "10.88.0.2", 443],  # a VPN handshake on 443/udp to an address nobody resolved
    ["tcp", "10.77.0.1", 443], ["udp", "10.77.0.1", 443], ["udp", "10.77.0.1", 40000],  # literals
    ["tcp", "fd77::1", 443], ["udp", "fd77::1", 443],
]
ANSWERED_BLOCKED: list[tuple[list[object], str]] = [
    (["dns", "10.53.0.1", 53, "www.blocked.test"], "rcode3"),  # redirected to the filter
    (["dns", "10.53.0.1", 53, "cdn-alias.test"], "rcode3"),  # a CNAME chain to a blocked name
]


def refused(result: str) -> bool:
    """An error at once: never an answer, an echo or a timeout."""
    if result in ("ok", "timeout", "nodata") or result.startswith("rcode"):
        return False
    try:
        ipaddress.ip_address(result)
    except ValueError:
        return True
    return False


def answered(check: list[object], result: str) -> bool:
    if check[0] in ("dns", "dns6"):
        try:
            ipaddress.ip_address(result)
        except ValueError:
            return False
        return True
    return result == "ok"


@pytest.mark.parametrize("mode", list(MODES))
def test_the_child_reaches_only_what_the_filter_resolved(netns: Netns, lists: Path, mode: str) -> None:
    before = netns.probe(CHILD, BROWSING[:1] + CALLS_WORK[:1])  # nothing resolved yet
    flt = netns.start_filter(MODES[mode], lists, "--child-uid", str(CHILD))
    try:
        before_lookup = netns.probe(CHILD, BROWSING[:1] + CALLS_WORK[:1])
        resolved = netns.probe(CHILD, [c for c, _ in RESOLVE])
        checks = BROWSING + CALLS_WORK + CALLS_BLOCKED + BYPASSES + [c for c, _ in ANSWERED_BLOCKED]
        child = netns.probe(CHILD, checks)
        root = netns.probe(0, checks)
    finally:
        netns.stop(flt)
    assert before == ["ok", "ok"]  # no table: the servers are there
    assert all(refused(r) for r in before_lookup), before_lookup  # an address before its lookup
    assert resolved == [want for _, want in RESOLVE]
    got = dict(zip(map(str, checks), child, strict=True))
    print(f"{mode}: what the child's refused attempts got:",
          sorted({got[str(c)] for c in CALLS_BLOCKED + BYPASSES}))
    for check in BROWSING + CALLS_WORK:
        assert got[str(check)] == "ok", (mode, check, got[str(check)])
    for check in CALLS_BLOCKED + BYPASSES:
        assert refused(got[str(check)]), (mode, check, got[str(check)])
    for check, want in ANSWERED_BLOCKED:
        assert got[str(check)] == want, (mode, check, got[str(check)])
    for check, result in zip(checks, root, strict=True):  # root: every server, every resolver
        assert answered(check, result), ("root", check, result)


def test_a_policys_fixed_networks_are_the_only_literals_the_child_reaches(
    netns: Netns, lists: Path
) -> None:
    """The real daemon reads filter.egress_allow from its policy: exactly that network is
    reachable without a lookup (any port), its neighbours are not."""
    agent, _state = netns.start_agent(
        '[filter]\nblock_categories = ["adult"]\negress_allow = ["10.77.0.1/32", "fd77::3/128"]\n',
        lists)
    try:
        child = netns.probe(CHILD, [
            ["tcp", "10.77.0.1", 443], ["udp", "10.77.0.1", 40000], ["udp", "fd77::3", 50000],
            ["udp", "10.77.0.3", 50000], ["tcp", "fd77::1", 443], ["tcp", "10.88.0.1", 443],
        ])
    finally:
        netns.stop(agent)
    assert child[:3] == ["ok", "ok", "ok"], child
    assert all(refused(r) for r in child[3:]), child
