"""`minormodectl purchases list | approve ID | deny ID` (root): answer pending purchases
until sync brings the guardian's answers."""

from __future__ import annotations

import argparse
import os

from agent.cli.errors import BadInputError, NotPermittedError
from agent.cli.human import money, when
from agent.cli.output import add_json_flag, print_json
from agent.cli.statedir import add_state, guard, layout, policy_zone
from agent.os.wallclock import wall_now
from agent.store.ledger import PurchaseStatus


def _require_root() -> None:
    if os.geteuid() != 0:
        raise NotPermittedError("purchases: only root may answer purchases")


def cmd_list(args: argparse.Namespace) -> int:
    _require_root()
    where = layout(args)
    status = PurchaseStatus(args.status) if args.status else None
    found = where.open_ledger().purchases(status) if where.ledger.exists() else []  # none yet
    if args.json:
        print_json([{"request_id": p.request_id, "status": p.status, "amount": p.amount,
                     "currency": p.currency, "app_id": p.app_id, "item": p.item,
                     "created_at": p.created_at, "reason": p.reason} for p in found])
        return 0
    tz = policy_zone(where)
    for p in found:
        print(f"{p.request_id}  {p.status:<8}  {money(p.amount, p.currency)}  {p.app_id}  "
              f"\"{p.item}\"  {when(p.created_at, tz)}  {p.reason}")
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    _require_root()
    where = layout(args)
    if not where.ledger.exists():
        raise BadInputError(f"no purchase {args.request_id!r}: no ledger at {where.ledger}")
    p = where.open_ledger().decide(args.request_id, approve, wall_now())
    print(f"{p.request_id}: {p.status}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purchases = sub.add_parser("purchases", help="(root) pending purchases")
    psub = purchases.add_subparsers(dest="purchases_command", required=True)
    p = add_state(psub.add_parser("list"))
    p.add_argument("--status", choices=[s.value for s in PurchaseStatus])
    add_json_flag(p)
    p.set_defaults(func=guard(cmd_list))
    for name, func in (("approve", cmd_approve), ("deny", cmd_deny)):
        p = add_state(psub.add_parser(name))
        p.add_argument("request_id")
        p.set_defaults(func=guard(func))
