"""What the state directory's commands share (journal, data, purchases): `--state`, the
layout of its files, a guardian key from a file, and how their errors end."""

from __future__ import annotations

import argparse
import json
import sqlite3
from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cli.errors import BadInputError, guarded
from agent.store import datarights, seal
from agent.store.journal import JournalError
from agent.store.layout import DEFAULT_STATE, StoreLayout
from agent.store.ledger import LedgerError

# The state directory's commands (journal, data, purchases): a missing or unreadable journal
# and a request the ledger refuses are bad input; a record that does not open with the key
# is a failed check.
guard = partial(guarded, bad_input=(JournalError, LedgerError, datarights.ExportError),
                failed=(seal.SealError,))


def layout(args: argparse.Namespace) -> StoreLayout:
    """The state directory a command reads: it must exist, since reading creates nothing
    (a missing directory would otherwise be made, with a fresh ledger or keys in it)."""
    state = Path(args.state)
    if not state.is_dir():
        raise BadInputError(f"--state {state}: no such directory (the agent's state directory; "
                            f"default {DEFAULT_STATE})")
    return StoreLayout(state)


def policy_zone(where: StoreLayout) -> tzinfo:
    """The timezone of the policy in force (the state store's last good one, read-only), for
    showing times as the family's clock; this machine's zone when there is none."""
    try:
        conn = sqlite3.connect(f"file:{where.state / 'state.sqlite'}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT body FROM policy").fetchone()
        finally:
            conn.close()
        return ZoneInfo(json.loads(row[0])["timezone"])
    except (sqlite3.Error, TypeError, KeyError, ValueError, ZoneInfoNotFoundError):
        return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


def add_state(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--state", default=str(DEFAULT_STATE), help="agent state directory")
    return p


def guardian_key(path: str) -> X25519PrivateKey:
    try:
        return seal.load_private_key(Path(path))
    except OSError as exc:
        raise BadInputError(f"--key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise BadInputError(f"--key {exc}") from exc
