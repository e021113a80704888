"""`minormodectl data list | delete`: the guardian's data rights on the device.

    data list [--key GUARDIAN_KEY]      what is held (with the key: counts by kind)
    data delete --reason TEXT --yes [--unpair]   delete everything; a signed receipt is kept
"""

from __future__ import annotations

import argparse

from agent.cli.errors import BadInputError
from agent.cli.human import when
from agent.cli.output import add_json_flag, print_json
from agent.cli.statedir import add_state, guard, guardian_key, layout, policy_zone
from agent.os.wallclock import wall_now
from agent.store import datarights


def cmd_list(args: argparse.Namespace) -> int:
    where = layout(args)
    ledger = where.open_ledger() if where.ledger.exists() else None
    with where.open_journal(writer=False, clock=wall_now) as journal:
        held = datarights.holdings(journal, ledger)
        by_kind = datarights.kinds(journal, guardian_key(args.key)) if args.key else None
    if args.json:
        print_json({
            "segments": [{"uid": s.uid, "opened_at": s.opened_at, "closed_at": s.closed_at,
                          "records": s.records, "sealed_to": sorted({role for role, _ in s.recipients})}
                         for s in held.segments],
            "records": held.records,
            "kinds": by_kind,  # null without --key: the kinds are sealed
            "purchases": held.purchases,
            "deletions": [{"at": r.at, "segments": r.segments, "records": r.records, "reason": r.reason}
                          for r in held.deletion_receipts],
        })
        return 0
    tz = policy_zone(where)
    print(f"journal: {len(held.segments)} segments, {held.records} sealed records")
    for s in held.segments:
        closed = when(s.closed_at, tz) if s.closed_at else "open"
        roles = ",".join(sorted({role for role, _ in s.recipients})) or "nobody"
        print(f"  segment {s.uid}  {when(s.opened_at, tz)} .. {closed}  "
              f"{s.records} records  sealed to: {roles}")
    if by_kind is not None:
        for kind, n in sorted(by_kind.items()):
            print(f"  {kind}: {n}")
    else:
        print("  (event kinds are sealed; pass --key GUARDIAN_KEY_FILE to count them)")
    print(f"purchases: {held.purchases}")
    for r in held.deletion_receipts:
        print(f"deleted {when(r.at, tz)}: {r.segments} segments, {r.records} records "
              f"({r.reason})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise BadInputError("data delete removes every record and purchase: add --yes")
    where = layout(args)
    ledger = where.open_ledger() if where.ledger.exists() else None
    with where.open_journal(clock=wall_now) as journal:
        receipt = datarights.delete_everything(journal, ledger, args.reason)
        if args.unpair:
            journal.forget_guardians()
    print(f"deleted {receipt.segments} segments, {receipt.records} records; "
          f"receipt {receipt.id} kept for the guardian")
    if args.unpair:
        print("guardian keys forgotten: new events are sealed to the device-local key")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser("data", help="the guardian's data rights on the device")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = add_state(dsub.add_parser("list", help="what is held"))
    p.add_argument("--key", help="guardian key file: also count events by kind")
    add_json_flag(p)
    p.set_defaults(func=guard(cmd_list))
    p = add_state(dsub.add_parser("delete", help="delete every record and purchase"))
    p.add_argument("--reason", default="guardian request")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--unpair", action="store_true", help="also forget the guardian keys")
    p.set_defaults(func=guard(cmd_delete))
