"""minormodectl subcommands for the journal, the guardian's data rights and purchases.

    journal verify                      check chain and signatures; exit 1 naming the first bad record
    journal read --key GUARDIAN_KEY     decrypt (tests and support); JSON lines
    journal export --out FILE           the sealed segments, for the guardian to take
    journal pair --guardian HEXKEY      seal to a guardian and re-wrap pre-pairing segments
    data list [--key GUARDIAN_KEY]      what is held (with the key: counts by kind)
    data delete --reason TEXT --yes [--unpair]   delete everything; a signed receipt is kept
    purchases list|approve ID|deny ID   (root) answer pending purchases until sync exists
    guardian-key new --out FILE         make a guardian X25519 key pair (tests, support)

Exit codes: 0 success, 1 failure (a bad journal), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.os.wallclock import wall_now
from agent.store import datarights, seal
from agent.store.journal import JournalError
from agent.store.layout import DEFAULT_STATE, StoreLayout
from agent.store.ledger import LedgerError, PurchaseStatus

EXIT_BAD_INPUT = 2


class BadInputError(Exception):
    """A bad argument, named for the user; exit 2."""


def _layout(args: argparse.Namespace) -> StoreLayout:
    return StoreLayout(Path(args.state))


def _guardian_key(path: str) -> X25519PrivateKey:
    try:
        return seal.load_private_key(Path(path))
    except OSError as exc:
        raise BadInputError(f"--key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise BadInputError(f"--key {exc}") from exc


def _wrap(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (BadInputError, JournalError, LedgerError, datarights.ExportError) as exc:
            print(f"minormodectl: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except seal.SealError as exc:
            print(f"minormodectl: {exc}", file=sys.stderr)
            return 1

    return run


def cmd_verify(args: argparse.Namespace) -> int:
    with _layout(args).open_journal(writer=False, clock=wall_now) as journal:
        report = journal.verify()
    print(report)
    return 0 if report.ok else 1


def cmd_read(args: argparse.Namespace) -> int:
    key = _guardian_key(args.key)
    with _layout(args).open_journal(writer=False, clock=wall_now) as journal:
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
    with _layout(args).open_journal(writer=False, clock=wall_now) as journal:
        n = datarights.export(journal, Path(args.out))
    print(f"exported {n} sealed records to {args.out}")
    return 0


def cmd_pair(args: argparse.Namespace) -> int:
    try:
        keys = [seal.public_key_from_hex(k) for k in args.guardian]
    except ValueError as exc:
        raise BadInputError(f"--guardian: {exc}") from exc
    with _layout(args).open_journal(clock=wall_now) as journal:
        n = journal.pair(keys)
    print(f"paired {len(keys)} guardian key(s); re-wrapped {n} earlier segment(s)")
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    layout = _layout(args)
    ledger = layout.open_ledger() if layout.ledger.exists() else None
    with layout.open_journal(writer=False, clock=wall_now) as journal:
        held = datarights.holdings(journal, ledger)
        by_kind = datarights.kinds(journal, _guardian_key(args.key)) if args.key else None
    print(f"journal: {len(held.segments)} segments, {held.records} sealed records")
    for s in held.segments:
        closed = s.closed_at.isoformat() if s.closed_at else "open"
        roles = ",".join(sorted({role for role, _ in s.recipients})) or "nobody"
        print(f"  segment {s.uid}  {s.opened_at.isoformat()} .. {closed}  "
              f"{s.records} records  sealed to: {roles}")
    if by_kind is not None:
        for kind, n in sorted(by_kind.items()):
            print(f"  {kind}: {n}")
    else:
        print("  (event kinds are sealed; pass --key GUARDIAN_KEY_FILE to count them)")
    print(f"purchases: {held.purchases}")
    for r in held.deletion_receipts:
        print(f"deleted {r.at.isoformat()}: {r.segments} segments, {r.records} records "
              f"({r.reason})")
    return 0


def cmd_data_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise BadInputError("data delete removes every record and purchase: add --yes")
    layout = _layout(args)
    ledger = layout.open_ledger() if layout.ledger.exists() else None
    with layout.open_journal(clock=wall_now) as journal:
        receipt = datarights.delete_everything(journal, ledger, args.reason)
        if args.unpair:
            journal.forget_guardians()
    print(f"deleted {receipt.segments} segments, {receipt.records} records; "
          f"receipt {receipt.id} kept for the guardian")
    if args.unpair:
        print("guardian keys forgotten: new events are sealed to the device-local key")
    return 0


def _require_root() -> None:
    if os.geteuid() != 0:
        raise BadInputError("purchases: only root may answer purchases")


def cmd_purchases_list(args: argparse.Namespace) -> int:
    _require_root()
    ledger = _layout(args).open_ledger()
    status = PurchaseStatus(args.status) if args.status else None
    for p in ledger.purchases(status):
        print(f"{p.request_id}  {p.status:<8}  {p.amount} {p.currency}  {p.app_id}  "
              f"{p.item!r}  {p.created_at.isoformat()}  {p.reason}")
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    _require_root()
    ledger = _layout(args).open_ledger()
    p = ledger.decide(args.request_id, approve, datetime.now(UTC))
    print(f"{p.request_id}: {p.status}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, False)


def cmd_guardian_key_new(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise BadInputError(f"--out {out}: exists; not overwriting a key")
    key = X25519PrivateKey.generate()
    seal.write_private_key(out, key)
    print(seal.recipient_id(key.public_key()))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def state(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--state", default=str(DEFAULT_STATE), help="agent state directory")
        return p

    journal = subparsers.add_parser("journal", help="the sealed event journal")
    jsub = journal.add_subparsers(dest="journal_command", required=True)
    state(jsub.add_parser("verify", help="check chain and signatures")).set_defaults(
        func=_wrap(cmd_verify))
    p = state(jsub.add_parser("read", help="decrypt with a guardian key (tests, support)"))
    p.add_argument("--key", required=True, help="guardian X25519 private key file (PEM)")
    p.set_defaults(func=_wrap(cmd_read))
    p = state(jsub.add_parser("export", help="write the sealed segments to a file"))
    p.add_argument("--out", required=True)
    p.set_defaults(func=_wrap(cmd_export))
    p = state(jsub.add_parser("pair", help="seal to guardian public keys (hex)"))
    p.add_argument("--guardian", action="append", required=True)
    p.set_defaults(func=_wrap(cmd_pair))

    data = subparsers.add_parser("data", help="the guardian's data rights on the device")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = state(dsub.add_parser("list", help="what is held"))
    p.add_argument("--key", help="guardian key file: also count events by kind")
    p.set_defaults(func=_wrap(cmd_data_list))
    p = state(dsub.add_parser("delete", help="delete every record and purchase"))
    p.add_argument("--reason", default="guardian request")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--unpair", action="store_true", help="also forget the guardian keys")
    p.set_defaults(func=_wrap(cmd_data_delete))

    purchases = subparsers.add_parser("purchases", help="(root) pending purchases")
    psub = purchases.add_subparsers(dest="purchases_command", required=True)
    p = state(psub.add_parser("list"))
    p.add_argument("--status", choices=[s.value for s in PurchaseStatus])
    p.set_defaults(func=_wrap(cmd_purchases_list))
    for name, func in (("approve", cmd_approve), ("deny", cmd_deny)):
        p = state(psub.add_parser(name))
        p.add_argument("request_id")
        p.set_defaults(func=_wrap(func))

    gk = subparsers.add_parser("guardian-key", help="guardian key pairs (tests, support)")
    gsub = gk.add_subparsers(dest="guardian_key_command", required=True)
    p = gsub.add_parser("new", help="write a new private key file; print the public key")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_wrap(cmd_guardian_key_new))
