"""The `inet minormode` nftables table: the child's closed egress, and the ways around the
DNS filter shut.

`ruleset(settings)` is a pure function returning nft JSON; `apply`/`remove` hand it to the
kernel in one transaction. This module is the one place the kernel is told anything about
the child's network. What the table does for the child's uid(s) only (root and system
services are untouched):
  * DNS (UDP and TCP port 53, any address, IPv4 and IPv6) is redirected to the filter;
  * DoT/DoQ (853, and DoQ's older 784 and 8853) is rejected, as is 443 (TCP and UDP) to
    known DoH resolver addresses, and common VPN ports;
  * closed egress, in every filter mode: besides loopback, the child reaches only addresses
    the filter resolved for it recently (sets with timeouts, `allow4`/`allow6`, filled by
    `NftSetLearner` before the answer reaches the child) and the policy's fixed networks
    (`fixed4`/`fixed6`, `filter.egress_allow`), on any port. An IP literal nobody
    resolved, another resolver on any port, DoH to an unlisted resolver by address and a
    VPN to a bare address all fail here. Only a flow's first packets are checked: an
    accepted flow is marked with the table's `epoch` in its conntrack entry, and later
    packets of a flow with that mark pass, so a call or a download outlives its
    addresses' timeouts; a new epoch (the table replaced when the filter tightens) makes
    every older flow face the sets again.

libnftables is driven through ctypes (~0.5 ms a transaction; the `nft` command costs
18-30 ms, too slow for learning addresses on the answer path). Debian's python3-nftables
binding is not importable from a venv, and it is itself only a ctypes wrapper.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

TABLE = "minormode"
FAMILY = "inet"

# Well-known DoH resolver addresses (anycast front ends of the big public resolvers).
# A manufacturer may extend the list in the agent settings.
DEFAULT_DOH4: tuple[str, ...] = (
    "1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3",
    "8.8.8.8", "8.8.4.4", "9.9.9.9", "149.112.112.112", "9.9.9.11", "149.112.112.11",
    "208.67.222.222", "208.67.220.220", "94.140.14.14", "94.140.15.15",
    "185.228.168.9", "185.228.169.9", "76.76.2.0", "76.76.10.0", "45.90.28.0", "45.90.30.0",
)
DEFAULT_DOH6: tuple[str, ...] = (
    "2606:4700:4700::1111", "2606:4700:4700::1001", "2001:4860:4860::8888",
    "2001:4860:4860::8844", "2620:fe::fe", "2620:fe::9", "2620:119:35::35",
    "2620:119:53::53", "2a10:50c0::ad1:ff", "2a10:50c0::ad2:ff",
)
# OpenVPN, WireGuard, IKE/IPsec NAT-T, L2TP, PPTP, common WireGuard-based services.
DEFAULT_VPN_UDP: tuple[int, ...] = (1194, 51820, 500, 4500, 1701)
DEFAULT_VPN_TCP: tuple[int, ...] = (1194, 1723)
# DNS over QUIC: 853 (RFC 9250), and 784 / 8853, which early DoQ resolvers and clients
# (AdGuard's among them) used before the RFC; DoT is TCP 853.
DEFAULT_DOQ_UDP: tuple[int, ...] = (853, 784, 8853)

MIN_LEARN_TIMEOUT = 300  # seconds; floor, so a short TTL does not cut a page mid-load
MAX_LEARN_TIMEOUT = 86400  # cap: a day-long TTL still expires
LEARN_GRACE = 60  # seconds: past the TTL a connection may still start; also the headroom
# a learned element gets beyond that, so a repeated answer refreshes it at most once a minute
EGRESS = "egress"  # the comment on the closed-egress rules (the benchmark's reference drops them)
BATCH = 1000  # elements per transaction ("Message too long" beyond ~1000)


class NftError(RuntimeError):
    """nftables refused a command; the message carries nft's own error text."""


@dataclass(frozen=True)
class NftSettings:
    child_uids: tuple[int, ...]
    filter_port: int
    doh4: tuple[str, ...] = DEFAULT_DOH4
    doh6: tuple[str, ...] = DEFAULT_DOH6
    vpn_udp: tuple[int, ...] = DEFAULT_VPN_UDP
    vpn_tcp: tuple[int, ...] = DEFAULT_VPN_TCP
    doq_udp: tuple[int, ...] = DEFAULT_DOQ_UDP
    fixed_allow: tuple[str, ...] = ()  # the policy's filter.egress_allow (CIDR text)
    epoch: int = 1  # conntrack mark of flows this table accepted (1..2**31)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.child_uids:
            raise ValueError("nft settings: child_uids is empty")
        for uid in self.child_uids:
            if not 0 < uid < 2**32 - 1:
                raise ValueError(f"nft settings: child uid {uid} is out of range (root never)")
        if not 0 < self.filter_port < 65536:
            raise ValueError(f"nft settings: filter_port {self.filter_port} is not a port")
        for a in self.doh4:
            ipaddress.IPv4Network(a)  # raises ValueError naming the address
        for a in self.doh6:
            ipaddress.IPv6Network(a)
        for a in self.fixed_allow:
            ipaddress.ip_network(a)
        if not 0 < self.epoch < 2**31:
            raise ValueError(f"nft settings: epoch {self.epoch} is out of range")
        for p in (*self.vpn_udp, *self.vpn_tcp):
            if not 0 < p < 65536 or p in (53, self.filter_port):
                raise ValueError(f"nft settings: VPN port {p} is not a port that may be closed")


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, fld: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": fld}}


def _uids(settings: NftSettings) -> Any:
    uids = sorted(settings.child_uids)
    return uids[0] if len(uids) == 1 else {"set": uids}


def _ports(ports: Sequence[int]) -> Any:
    return ports[0] if len(ports) == 1 else {"set": sorted(ports)}


def _elem(addr: str) -> Any:
    net = ipaddress.ip_network(addr, strict=False)
    if net.num_addresses == 1:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


REJECT_TCP = {"reject": {"type": "tcp reset"}}
REJECT_ANY = {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}


def ruleset(settings: NftSettings) -> dict[str, Any]:
    """The whole table as one nft JSON transaction (replaces any previous version)."""
    t = {"family": FAMILY, "table": TABLE}
    table = {"family": FAMILY, "name": TABLE}
    cmds: list[dict[str, Any]] = [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    sets = [
        ("doh4", "ipv4_addr", ["interval"], settings.doh4),
        ("doh6", "ipv6_addr", ["interval"], settings.doh6),
        ("allow4", "ipv4_addr", ["timeout"], ()),
        ("allow6", "ipv6_addr", ["timeout"], ()),
        ("fixed4", "ipv4_addr", ["interval"], _family(settings.fixed_allow, 4)),
        ("fixed6", "ipv6_addr", ["interval"], _family(settings.fixed_allow, 6)),
    ]
    for name, typ, flags, elems in sets:
        spec: dict[str, Any] = {**t, "name": name, "type": typ, "flags": flags}
        if elems:
            spec["elem"] = [_elem(a) for a in elems]
        cmds.append({"add": {"set": spec}})

    def chain(name: str, **hook: Any) -> None:
        cmds.append({"add": {"chain": {**t, "name": name, **hook}}})

    def rule(chain_name: str, *expr: dict[str, Any], comment: str | None = None) -> None:
        spec = {**t, "chain": chain_name, "expr": list(expr)}
        if comment is not None:
            spec["comment"] = comment
        cmds.append({"add": {"rule": spec}})

    skuid = {"meta": {"key": "skuid"}}
    chain("dns_redirect", type="nat", hook="output", prio=-100, policy="accept")
    for proto in ("udp", "tcp"):
        rule(
            "dns_redirect",
            _match(skuid, _uids(settings)),
            _match(_payload(proto, "dport"), 53),
            {"redirect": {"port": settings.filter_port}},
        )
    chain("output", type="filter", hook="output", prio=0, policy="accept")
    chain("child")
    # Only packets with a socket owned by the child jump; kernel-made packets never do.
    rule("output", _match(skuid, _uids(settings)), {"jump": {"target": "child"}})
    rule("child", _match(_payload("ip", "daddr"), {"prefix": {"addr": "127.0.0.0", "len": 8}}),
         {"accept": None})
    rule("child", _match(_payload("ip6", "daddr"), "::1"), {"accept": None})
    ctmark = {"ct": {"key": "mark"}}
    # A flow this table accepted (its first packets faced the rules below): pass.
    rule("child", _match({"ct": {"key": "state"}}, "established", "in"),
         _match(ctmark, settings.epoch), {"accept": None}, comment=EGRESS)
    rule("child", _match(_payload("tcp", "dport"), 853), REJECT_TCP)
    rule("child", _match(_payload("udp", "dport"), _ports(settings.doq_udp)), REJECT_ANY)
    for fam, name in (("ip", "@doh4"), ("ip6", "@doh6")):
        rule("child", _match(_payload(fam, "daddr"), name),
             _match(_payload("tcp", "dport"), 443), REJECT_TCP)
        rule("child", _match(_payload(fam, "daddr"), name),
             _match(_payload("udp", "dport"), 443), REJECT_ANY)
    if settings.vpn_tcp:
        rule("child", _match(_payload("tcp", "dport"), _ports(settings.vpn_tcp)), REJECT_TCP)
    if settings.vpn_udp:
        rule("child", _match(_payload("udp", "dport"), _ports(settings.vpn_udp)), REJECT_ANY)
    # Closed egress: learned or fixed addresses only, any port; the flow is marked.
    mark = {"mangle": {"key": ctmark, "value": settings.epoch}}
    for fam, set_name in (("ip", "@allow4"), ("ip", "@fixed4"), ("ip6", "@allow6"),
                          ("ip6", "@fixed6")):
        rule("child", _match(_payload(fam, "daddr"), set_name), mark, {"accept": None},
             comment=EGRESS)
    rule("child", _match({"meta": {"key": "l4proto"}}, "tcp"), REJECT_TCP, comment=EGRESS)
    rule("child", REJECT_ANY, comment=EGRESS)
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *cmds]}


def _family(networks: Sequence[str], version: int) -> tuple[str, ...]:
    return tuple(n for n in networks if ipaddress.ip_network(n, strict=False).version == version)


def fixed_commands(networks: Sequence[str]) -> dict[str, Any]:
    """One transaction replacing the fixed sets' networks (a policy change), leaving the
    learned sets and the flows alone."""
    cmds: list[dict[str, Any]] = []
    for name, version in (("fixed4", 4), ("fixed6", 6)):
        target = {"family": FAMILY, "table": TABLE, "name": name}
        cmds.append({"flush": {"set": target}})
        elems = [_elem(a) for a in _family(networks, version)]
        if elems:
            cmds.append({"add": {"element": {**target, "elem": elems}}})
    return {"nftables": cmds}


def removal() -> dict[str, Any]:
    """Delete the table if present (adding it first makes the delete never fail)."""
    table = {"family": FAMILY, "name": TABLE}
    return {"nftables": [{"add": {"table": table}}, {"delete": {"table": table}}]}


def learn_need(ttl: int) -> int:
    """Seconds an answer's addresses must stay reachable: its TTL (capped) and a grace."""
    return min(ttl, MAX_LEARN_TIMEOUT - 2 * LEARN_GRACE) + LEARN_GRACE


def learn_timeout(ttl: int) -> int:
    """Seconds a learned address stays in its set: what the answer needs and a minute's
    headroom, at least MIN_LEARN_TIMEOUT, at most MAX_LEARN_TIMEOUT."""
    return max(MIN_LEARN_TIMEOUT, learn_need(ttl) + LEARN_GRACE)


def learn_commands(addresses: Sequence[tuple[bytes, int]]) -> list[dict[str, Any]]:
    """nft JSON transactions putting learned addresses in their sets with fresh timeouts,
    at most BATCH addresses each. An `add` leaves an element already there with its old
    timeout, so each address is added (in case it is not there), deleted and added again
    with its new timeout: one transaction, so no packet ever sees it missing."""
    v4: list[dict[str, Any]] = []
    v6: list[dict[str, Any]] = []
    for raw, ttl in addresses:
        timeout = learn_timeout(ttl)
        if len(raw) == 4:
            v4.append({"val": str(ipaddress.IPv4Address(raw)), "timeout": timeout})
        elif len(raw) == 16:
            v6.append({"val": str(ipaddress.IPv6Address(raw)), "timeout": timeout})
    out = []
    for name, elems in (("allow4", v4), ("allow6", v6)):
        for i in range(0, len(elems), BATCH):
            chunk = elems[i : i + BATCH]
            target = {"family": FAMILY, "table": TABLE, "name": name}
            out.append({"nftables": [
                {"add": {"element": {**target, "elem": [{"elem": e} for e in chunk]}}},
                {"delete": {"element": {**target, "elem": [e["val"] for e in chunk]}}},
                {"add": {"element": {**target, "elem": [{"elem": e} for e in chunk]}}},
            ]})
    return out


class Nft:
    """Runs nft JSON through libnftables (ctypes), or the `nft` command if it is missing.

    Acts in the network namespace of the calling process.
    """

    NFT_CTX_OUTPUT_JSON = 1 << 4

    def __init__(self, use_library: bool = True) -> None:
        self._lock = threading.Lock()
        self._lib: Any = None
        self._ctx: Any = None
        if use_library:
            try:
                lib = ctypes.CDLL("libnftables.so.1")
            except OSError:
                lib = None
            if lib is not None:
                lib.nft_ctx_new.restype = ctypes.c_void_p
                lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
                lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
                lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
                lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
                ctx = lib.nft_ctx_new(0)
                if ctx:
                    lib.nft_ctx_output_set_flags(ctx, self.NFT_CTX_OUTPUT_JSON)
                    lib.nft_ctx_buffer_output(ctx)
                    lib.nft_ctx_buffer_error(ctx)
                    self._lib, self._ctx = lib, ctx
        if self._lib is None and shutil.which("nft") is None:
            raise NftError("neither libnftables.so.1 nor the nft command is available")

    @property
    def uses_library(self) -> bool:
        return self._lib is not None

    def run(self, document: dict[str, Any]) -> None:
        """Run one JSON document as one transaction; NftError with nft's message on failure."""
        text = json.dumps(document)
        if self._lib is not None:
            with self._lock:
                rc = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
                err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
            if rc != 0:
                raise NftError(f"nftables rejected the transaction: {err.decode(errors='replace')}")
            return
        proc = subprocess.run(
            ["nft", "-j", "-f", "-"], input=text, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise NftError(f"nft -j -f failed: {proc.stderr.strip()}")

    def close(self) -> None:
        if self._lib is not None and self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
            self._lib = None


def apply(settings: NftSettings, nft: Nft | None = None) -> None:
    """Install (or atomically replace) the table."""
    (nft or Nft()).run(ruleset(settings))


def remove(nft: Nft | None = None) -> None:
    """Delete the table; a no-op if it is not there."""
    (nft or Nft()).run(removal())


class NftSetLearner:
    """AddressLearner for the DNS filter: puts answer addresses in allow4/allow6.

    It remembers when each element it set expires, so an answer whose addresses already
    outlive its TTL and the grace (most of a child's lookups: the same sites again) costs
    no transaction on the DNS thread: an address is refreshed at most once a minute.
    `install` replaces the table (emptying the sets) under the same lock, so that memory
    never claims an address the kernel no longer has.
    """

    def __init__(self, nft: Nft | None = None, *, clock: Callable[[], float] = time.monotonic,
                 max_known: int = 65536) -> None:
        self.nft = nft or Nft()
        self.clock = clock
        self.max_known = max_known
        self.transactions = 0  # nft transactions run (tests, benchmarks)
        self._known: dict[bytes, float] = {}  # address -> when its element expires (clock)
        self._lock = threading.Lock()

    def learn(self, addresses: Sequence[tuple[bytes, int]]) -> None:
        with self._lock:
            now = self.clock()
            known = self._known
            wanted: dict[bytes, int] = {}
            for raw, ttl in addresses:
                expires = known.get(raw)
                if expires is None or expires - now < learn_need(ttl):
                    wanted[raw] = max(ttl, wanted.get(raw, 0))
            if not wanted:
                return
            for doc in learn_commands(list(wanted.items())):
                self.nft.run(doc)
                self.transactions += 1
            if len(known) + len(wanted) > self.max_known:
                for raw in [r for r, exp in known.items() if exp <= now]:
                    del known[raw]
                if len(known) + len(wanted) > self.max_known:
                    known.clear()  # forgetting only costs transactions: every add refreshes
            for raw, ttl in wanted.items():
                known[raw] = now + learn_timeout(ttl)

    def install(self, settings: NftSettings) -> None:
        """Install or replace the table (its learned sets empty) and forget what was learned."""
        with self._lock:
            apply(settings, self.nft)
            self._known.clear()

    def set_fixed(self, networks: Sequence[str]) -> None:
        """Replace the policy's fixed networks; the learned sets and flows stay."""
        with self._lock:
            self.nft.run(fixed_commands(networks))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m agent.filter.nft apply|remove|show ...` (tests, QEMU runs, operators)."""
    parser = argparse.ArgumentParser(prog="python -m agent.filter.nft")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ap = sub.add_parser("apply", help="install or replace the inet minormode table")
    ap.add_argument("--child-uid", type=int, action="append", required=True)
    ap.add_argument("--port", type=int, required=True, help="the DNS filter's port on loopback")
    ap.add_argument("--allow-net", action="append", default=[],
                    help="a fixed network the child may reach (the policy's filter.egress_allow)")
    ap.add_argument("--doh", action="append", default=[], help="extra DoH resolver address")
    sub.add_parser("remove", help="delete the table")
    sub.add_parser("show", help="print the JSON the apply command would load")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "remove":
            remove()
            return 0
        settings = NftSettings(
            child_uids=tuple(getattr(args, "child_uid", None) or (65534,)),
            filter_port=getattr(args, "port", 53) or 53,
            doh4=DEFAULT_DOH4 + tuple(a for a in getattr(args, "doh", []) if ":" not in a),
            doh6=DEFAULT_DOH6 + tuple(a for a in getattr(args, "doh", []) if ":" in a),
            fixed_allow=tuple(getattr(args, "allow_net", [])),
        )
        if args.cmd == "show":
            print(json.dumps(ruleset(settings), indent=1))
            return 0
        apply(settings)
    except (ValueError, NftError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
