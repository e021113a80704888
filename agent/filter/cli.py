"""`minormodectl lists ...`: compile category lists for the DNS filter.

Wired by the lead's agent/cli.py with `agent.filter.cli.register(subparsers)`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.filter.hashlist import HashList, ListFileError
from agent.filter.lists import ALL_LISTS, ListSourceError, compile_all, compile_category

DEFAULT_SOURCE = Path("/etc/minormode/lists")
DEFAULT_OUTPUT = Path("/var/lib/minormode/lists")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lists = subparsers.add_parser("lists", help="content filter lists")
    sub = lists.add_subparsers(dest="lists_command", required=True)
    comp = sub.add_parser("compile", help="compile source lists into the filter's list files")
    comp.add_argument("--src", type=Path, default=DEFAULT_SOURCE,
                      help=f"source directory (default {DEFAULT_SOURCE})")
    comp.add_argument("--out", type=Path, default=DEFAULT_OUTPUT,
                      help=f"output directory (default {DEFAULT_OUTPUT})")
    comp.add_argument("--category", choices=ALL_LISTS, help="compile only this list")
    comp.add_argument("--strict", action="store_true", help="fail on any invalid line")
    comp.add_argument("--quiet", action="store_true", help="no progress lines")
    comp.set_defaults(func=run_compile)
    info = sub.add_parser("info", help="show the compiled lists")
    info.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    info.set_defaults(func=run_info)


def run_compile(args: argparse.Namespace) -> int:
    started = time.monotonic()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    try:
        if args.category:
            if not args.src.is_dir():
                raise ListSourceError(f"{args.src}: list source directory does not exist")
            args.out.mkdir(parents=True, exist_ok=True)
            reports = [compile_category(args.src, args.out, args.category, progress, args.strict)]
        else:
            reports = compile_all(args.src, args.out, progress, args.strict)
    except (ListSourceError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in reports:
        for problem in r.problems:
            print(f"warning: {problem}", file=sys.stderr)
        if r.skipped > len(r.problems):
            print(f"warning: {r.category}: {r.skipped - len(r.problems)} more invalid lines",
                  file=sys.stderr)
    total = sum(r.written for r in reports)
    print(f"compiled {total:,} names into {args.out} in {time.monotonic() - started:.1f} s")
    return 0


def run_info(args: argparse.Namespace) -> int:
    status = 0
    for name in ALL_LISTS:
        path = args.out / f"{name}.mmdl"
        if not path.exists():
            print(f"{name:<18} missing")
            continue
        try:
            hl = HashList(path)
        except ListFileError as exc:
            print(f"{name:<18} unreadable: {exc}")
            status = 1
            continue
        print(f"{name:<18} {len(hl):>10,} names  {path.stat().st_size / 1024:>10.1f} KiB")
        hl.close()
    return status


def main(argv: list[str] | None = None) -> int:
    """Standalone form: `python -m agent.filter.cli lists compile ...`."""
    parser = argparse.ArgumentParser(prog="minormodectl")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
