"""`minormodectl journal verify | read | export | pair`: the sealed, chained event journal.

    journal verify                      check chain and signatures; exit 1 naming the first bad record
    journal read --key GUARDIAN_KEY     decrypt (tests and support); JSON lines
    journal export --out FILE           the sealed segments, for the guardian to take
    journal pair --guardian HEXKEY      seal to a guardian and re-wrap pre-pairing segments
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.cli.errors import BadInputError, Command
from agent.cli.output import add_json_flag, print_json
from agent.cli.statedir import add_state, guard, guardian_key, layout
from agent.os.wallclock import wall_now
from agent.store import datarights, seal


def cmd_verify(args: argparse.Namespace) -> int:
    with layout(args).open_journal(writer=False, clock=wall_now) as journal:
        report = journal.verify()
    if args.json:
        print_json({"ok": report.ok, "records": report.records, "first_bad": report.first_bad,
                    "problem": report.problem})
    else:
        print(report)
    return 0 if report.ok else 1


def cmd_read(args: argparse.Namespace) -> int:
    """JSON lines always (one object per record), so --json changes nothing here."""
    where = layout(args)
    key = guardian_key(args.key)
    with where.open_journal(writer=False, clock=wall_now) as journal:
        for entry in journal.read(key):
            line = {
                "seq": entry.seq,
                "segment": entry.segment_uid,
                "kind": entry.event.kind.value,
                "at": entry.event.at.isoformat(),
                "data": dict(entry.event.data),
            }
            print(json.dumps(line, ensure_ascii=False, sort_keys=True))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with layout(args).open_journal(writer=False, clock=wall_now) as journal:
        n = datarights.export(journal, Path(args.out))
    print(f"exported {n} sealed records to {args.out}")
    return 0


def cmd_pair(args: argparse.Namespace) -> int:
    try:
        keys = [seal.public_key_from_hex(k) for k in args.guardian]
    except ValueError as exc:
        raise BadInputError(f"--guardian: {exc}") from exc
    with layout(args).open_journal(clock=wall_now) as journal:
        n = journal.pair(keys)
    print(f"paired {len(keys)} guardian key(s); re-wrapped {n} earlier segment(s)")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    journal = sub.add_parser("journal", help="the sealed event journal")
    jsub = journal.add_subparsers(dest="journal_command", required=True)

    def add(name: str, help_: str, func: Command) -> argparse.ArgumentParser:
        p = add_state(jsub.add_parser(name, help=help_))
        p.set_defaults(func=guard(func))
        return p

    add_json_flag(add("verify", "check chain and signatures", cmd_verify))
    p = add("read", "decrypt with a guardian key (tests, support); JSON lines", cmd_read)
    p.add_argument("--key", required=True, help="guardian X25519 private key file (PEM)")
    add_json_flag(p)
    add("export", "write the sealed segments to a file", cmd_export).add_argument("--out", required=True)
    add("pair", "seal to guardian public keys (hex)", cmd_pair).add_argument(
        "--guardian", action="append", required=True)
