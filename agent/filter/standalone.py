"""The DNS filter as a program of its own, without the daemon (the QEMU run, benchmarks,
the network-namespace tests):

    python -m agent.filter.standalone --lists DIR --upstream IP:PORT --profile-json FILE ...

The profile file is a policy's `filter` table as JSON, read by the policy's own parser
(`agent.core.parse.filter_profile_from_mapping`): the same keys, checks and defaults.
Blocked names go to a JSON-lines file instead of the journal, stamped with the wall clock
(there is no trusted clock here). Heavy modules (nft: ctypes and subprocess) are imported
only when asked for, to keep the measured RSS the filter's own.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from agent.core.parse import PolicyError, filter_profile_from_mapping
from agent.core.policy import FilterProfile
from agent.filter.server import AddressLearner, DnsFilter, FilterSettings
from agent.filter.upstream import Address
from agent.os.wallclock import wall_now
from agent.store.events import Event, EventSink


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {text!r} is not HOST:PORT")
    host = host.strip("[]")
    socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    return host, int(port)


def load_profile(path: Path) -> FilterProfile:
    """The profile file: a policy's `filter` table as a JSON object; ValueError naming
    the file and every bad key."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read profile JSON: {exc}") from None
    try:
        return filter_profile_from_mapping(raw, str(path))
    except PolicyError as exc:
        raise ValueError(str(exc)) from None


class JsonLinesEventSink:
    """Appends events as JSON lines to a file (the standalone filter's journal stand-in)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: Event) -> None:
        line = json.dumps({"kind": str(event.kind), "at": event.at.isoformat(), **event.data})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent.filter.standalone", description="Run the DNS filter standalone."
    )
    parser.add_argument("--lists", type=Path, required=True, help="compiled list directory")
    parser.add_argument("--upstream", action="append", required=True, help="IP:PORT (repeat)")
    parser.add_argument("--listen", action="append", default=None, help="IP:PORT (repeat)")
    parser.add_argument("--profile-json", type=Path, required=True,
                        help="a policy's [filter] table as a JSON object")
    parser.add_argument("--version", type=int, default=1, help="policy version")
    parser.add_argument("--events", type=Path, help="append DNS_BLOCKED events here (JSON lines)")
    parser.add_argument("--nft-learn", action="store_true",
                        help="allowlist-only: add answer addresses to the nft allow sets")
    parser.add_argument("--ready-file", type=Path, help="write the bound addresses here")
    parser.add_argument("--child-uid", type=int, action="append",
                        help="also install the nft table for this uid (removed on exit)")
    parser.add_argument("--cache-size", type=int, default=16384)
    parser.add_argument("--timeout", type=float, default=1.5)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        settings = FilterSettings(
            listen=tuple(parse_address(a) for a in (args.listen or ["127.0.0.1:53"])),
            upstreams=tuple(parse_address(a) for a in args.upstream),
            lists_dir=args.lists,
            cache_size=args.cache_size,
            timeout=args.timeout,
        )
        profile = load_profile(args.profile_json)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sink = JsonLinesEventSink(args.events) if args.events else None
    if args.child_uid:
        return _run_with_table(args, settings, profile, sink)
    learner: AddressLearner | None = None
    if args.nft_learn:  # imported only when used: ctypes and subprocess cost RSS
        learner = importlib.import_module("agent.filter.nft").NftSetLearner()
    try:
        flt = DnsFilter(settings, profile, args.version, clock=wall_now, events=sink,
                        learner=learner)
        flt.open()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: flt.stop())
    signal.signal(signal.SIGINT, lambda *_: flt.stop())
    if args.ready_file:
        _write_ready(args.ready_file, flt)
    flt.run()
    return 0


def _write_ready(path: Path, flt: DnsFilter) -> None:
    path.write_text(json.dumps([list(a) for a in flt.bound]))


def _run_with_table(
    args: argparse.Namespace,
    settings: FilterSettings,
    profile: FilterProfile,
    sink: EventSink | None,
) -> int:
    """The filter plus the nft table, as the daemon runs them (NetworkFilter)."""
    service = importlib.import_module("agent.filter.service")
    nft = importlib.import_module("agent.filter.nft")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        net = service.NetworkFilter(settings, tuple(args.child_uid), clock=wall_now, events=sink)
        net.start(profile, args.version)
    except (ValueError, OSError, nft.NftError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.ready_file and net.dns is not None:
            _write_ready(args.ready_file, net.dns)
        done.wait()
    finally:
        net.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
