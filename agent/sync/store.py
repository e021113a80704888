"""What the sync client remembers between runs (sync.sqlite, root-only): the dashboard's
journal cursor and epoch, the server key pinned at pairing, and what was last uploaded
(summaries by day, the catalogue), so nothing is sent twice and nothing is skipped.

The day's chart counts (`agent.sync.daily.DailyCounts`) live in the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.store.sqlite import SqliteFile

SYNC_DB = "sync.sqlite"
_SCHEMA = "CREATE TABLE IF NOT EXISTS sync_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


@dataclass(frozen=True)
class Cursor:
    epoch: str | None  # the server's epoch last answered (None: never uploaded)
    acked: int  # the highest seq the server acknowledged under that epoch
    next_seq: int  # what to send next


class SyncStore(SqliteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM sync_kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _put(self, **values: str | None) -> None:
        with self._transaction() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM sync_kv WHERE key = ?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO sync_kv (key, value) VALUES (?, ?)", (key, value))

    def cursor(self) -> Cursor:
        return Cursor(self._get("epoch"), int(self._get("acked") or 0), int(self._get("next_seq") or 1))

    def save_cursor(self, cursor: Cursor, left_out: tuple[int, int, int] | None = None) -> None:
        """`left_out`: (from, first damaged, to), records the server just let the upload go
        past, kept with the cursor in one transaction until `left_out_said` (so a kill -9
        between the two never loses the journal_damaged event that names them)."""
        extra = {} if left_out is None else {"left_out": " ".join(map(str, left_out))}
        self._put(epoch=cursor.epoch, acked=str(cursor.acked), next_seq=str(cursor.next_seq), **extra)

    def left_out(self) -> tuple[int, int, int] | None:
        value = self._get("left_out")
        if value is None:
            return None
        first, damaged, last = (int(x) for x in value.split())
        return first, damaged, last

    def left_out_said(self) -> None:
        self._put(left_out=None)

    @property
    def server_key(self) -> bytes | None:
        value = self._get("server_key")
        return None if value is None else bytes.fromhex(value)

    def pin(self, server_key: bytes, origin: str) -> None:
        """Pinned at pairing; a key that differs later is refused, until a new pairing."""
        self._put(server_key=server_key.hex(), origin=origin)

    @property
    def origin(self) -> str | None:
        return self._get("origin")

    def uploaded(self, what: str) -> str | None:
        """The digest of what was last uploaded under `what` (a day's summary, the catalogue)."""
        return self._get(f"uploaded:{what}")

    def mark_uploaded(self, what: str, digest: str) -> None:
        self._put(**{f"uploaded:{what}": digest})

    def last_contact(self) -> int | None:
        value = self._get("last_contact")
        return None if value is None else int(value)

    def contact(self, at: int) -> None:
        self._put(last_contact=str(at))

    def forget(self) -> None:
        """Unpaired: nothing of the old family's sync state stays."""
        with self._transaction() as db:
            db.execute("DELETE FROM sync_kv")
