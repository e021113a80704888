"""What the state directory's commands share (journal, data, purchases): `--state`, the
layout of its files, a guardian key from a file, and how their errors end."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

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
    return StoreLayout(Path(args.state))


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
