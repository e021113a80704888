"""Where the journal, the ledger and their keys live in the agent's state directory.

One place for the file names, so the daemon and `minormodectl` open the same files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.store import seal
from agent.store.identity import ensure_device_key
from agent.store.journal import Journal, JournalError
from agent.store.ledger import Ledger

DEFAULT_STATE = Path("/var/lib/minormode")


@dataclass(frozen=True)
class StoreLayout:
    state: Path = DEFAULT_STATE

    @property
    def journal(self) -> Path:
        return self.state / "journal.sqlite"

    @property
    def ledger(self) -> Path:
        return self.state / "ledger.sqlite"

    @property
    def device_key(self) -> Path:
        """The device's Ed25519 identity (agent.store.identity); signs journal checkpoints."""
        return self.state / "device-identity.key"

    @property
    def local_seal_key(self) -> Path:
        """X25519 key sealing journal segments before a guardian is paired; root-only."""
        return self.state / "journal-local.key"

    def open_journal(self, *, clock: Callable[[], datetime], writer: bool = True) -> Journal:
        """`clock` stamps what the journal writes: the daemon's trusted time."""
        if not writer and not self.journal.exists():
            raise JournalError(f"no journal at {self.journal}")
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Journal(
            self.journal,
            ensure_device_key(self.device_key),
            seal.ensure_local_key(self.local_seal_key),
            writer=writer,
            clock=clock,
        )

    def open_ledger(self) -> Ledger:
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Ledger(self.ledger)
