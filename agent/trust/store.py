"""What the device remembers about its guardians: the keyring, what it answered, what it
still has to send, the guardian-code secret and the consent (SQLite, WAL, synchronous=FULL).

One file of its own (`trust.sqlite`, root-only) so that the keyring cannot be touched by
anything that writes usage or the journal. Every write is one transaction, and recording
an answer (the `answered` row, its signed ack in the outbox, and the signed policy version
if it was a policy) is one transaction, so a crash leaves either no trace of a message (it
is applied again when redelivered: every effect is idempotent by message id) or all of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from agent.store.sqlite import SqliteFile
from protocol.accept import ReplayState
from protocol.envelope import envelope_from_json
from protocol.keyring import Keyring

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keyring (seq INTEGER PRIMARY KEY, envelope TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answered (
    id TEXT PRIMARY KEY,              -- the guardian message id
    type TEXT NOT NULL,
    exp INTEGER NOT NULL,             -- unix seconds: kept (for replay refusal) until then
    result TEXT NOT NULL,             -- applied | refused
    reason TEXT NOT NULL,
    at INTEGER NOT NULL,
    ack TEXT NOT NULL                 -- the signed ack, resent if the message comes again
);
CREATE TABLE IF NOT EXISTS received (
    id TEXT PRIMARY KEY,              -- a guardian message taken in but not yet answered
    sealed TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,          -- the device message id
    kind TEXT NOT NULL,               -- ack | receipt | paired | request | summary | catalogue
    body TEXT NOT NULL,               -- the signed (or sealed) message, JSON
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
"""
MAX_REFUSED_KEPT = 1_000  # refusals are kept for redelivery answers, but never without bound


@dataclass(frozen=True)
class Answer:
    id: str
    result: str
    reason: str
    at: int
    ack: bytes


@dataclass(frozen=True)
class Outgoing:
    seq: int
    id: str
    kind: str
    body: bytes
    created_at: int


@dataclass(frozen=True)
class Consent:
    notice: str
    usage_reports: bool
    push_notifications: bool


class TrustStore(SqliteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, secure_delete=True)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set(db: sqlite3.Connection, key: str, value: str | None) -> None:
        if value is None:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- the keyring ---------------------------------------------------------------------

    @property
    def paired(self) -> bool:
        return self._db.execute("SELECT 1 FROM keyring LIMIT 1").fetchone() is not None

    def keyring(self) -> Keyring | None:
        """The stored keyring, re-verified entry by entry (a keyring edited on disk fails
        here, and the caller treats the device as unpaired-and-tampered)."""
        rows = self._db.execute("SELECT envelope FROM keyring ORDER BY seq").fetchall()
        if not rows:
            return None
        return Keyring.from_entries(envelope_from_json(json.loads(r[0]), f"trust.keyring[{i}]")
                                    for i, r in enumerate(rows))

    def save_keyring(self, ring: Keyring, *, paired_at: int | None = None,
                     received: Sequence[tuple[str, bytes]] = ()) -> None:
        """Store `ring` (which must extend the stored one; callers check that with
        `Keyring.extend_all`), with guardian messages that came with it (pairing's first
        messages), in one transaction: a crash never leaves a keyring without them."""
        with self._transaction() as db:
            self._receive(db, received, paired_at or 0)
            db.execute("DELETE FROM keyring")
            db.executemany("INSERT INTO keyring (seq, envelope) VALUES (?, ?)",
                           [(i, json.dumps(e.to_json())) for i, e in enumerate(ring.entries)])
            self._set(db, "family", ring.family)
            if paired_at is not None:
                self._set(db, "paired_at", str(paired_at))
                self._set(db, "policy_version", "0")

    @property
    def family(self) -> str | None:
        return self._meta("family")

    @property
    def paired_at(self) -> int | None:
        value = self._meta("paired_at")
        return None if value is None else int(value)

    # -- messages taken in -------------------------------------------------------------------

    @staticmethod
    def _receive(db: sqlite3.Connection, messages: Sequence[tuple[str, bytes]], at: int) -> None:
        db.executemany("INSERT OR IGNORE INTO received (id, sealed, received_at) VALUES (?, ?, ?)",
                       [(i, m.decode(), at) for i, m in messages if not db.execute(
                           "SELECT 1 FROM answered WHERE id = ?", (i,)).fetchone()])

    def receive(self, messages: Sequence[tuple[str, bytes]], at: int) -> None:
        """Take guardian messages in durably before applying them (sync acknowledges a
        fetch only after this)."""
        with self._transaction() as db:
            self._receive(db, messages, at)

    def received(self) -> list[tuple[str, bytes]]:
        return [(r[0], r[1].encode()) for r in self._db.execute(
            "SELECT id, sealed FROM received ORDER BY received_at, rowid")]

    # -- replay state and answers ---------------------------------------------------------

    @property
    def policy_version(self) -> int:
        """The version of the signed policy in force (0: none since pairing)."""
        return int(self._meta("policy_version") or 0)

    @property
    def policy_signer(self) -> str:
        return self._meta("policy_signer") or ""

    def replay_state(self, now: int) -> ReplayState:
        used = {str(i): int(exp) for i, exp in self._db.execute(
            "SELECT id, exp FROM answered WHERE result = 'applied' AND exp > ?", (now,))}
        return ReplayState(self.policy_version, MappingProxyType(used))

    def answer_for(self, message_id: str) -> Answer | None:
        row = self._db.execute("SELECT id, result, reason, at, ack FROM answered WHERE id = ?",
                               (message_id,)).fetchone()
        return None if row is None else Answer(row[0], row[1], row[2], row[3], row[4].encode())

    def record_answer(self, *, message_id: str, type_: str, exp: int, result: str, reason: str,
                      at: int, ack_id: str, ack: bytes, policy: tuple[int, str] | None = None) -> None:
        """The answer to one guardian message and its signed ack, in one transaction; for
        an applied policy also its version and signer (the next one must be newer)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO answered (id, type, exp, result, reason, at, ack) "
                       "VALUES (?,?,?,?,?,?,?)", (message_id, type_, exp, result, reason, at, ack.decode()))
            db.execute("INSERT OR IGNORE INTO outbox (id, kind, body, created_at) VALUES (?, 'ack', ?, ?)",
                       (ack_id, ack.decode(), at))
            db.execute("DELETE FROM received WHERE id = ?", (message_id,))
            if policy is not None:
                self._set(db, "policy_version", str(policy[0]))
                self._set(db, "policy_signer", policy[1])
            db.execute("DELETE FROM answered WHERE exp < ?", (at - 86_400,))
            db.execute("DELETE FROM answered WHERE result = 'refused' AND id NOT IN (SELECT id FROM "
                       "answered WHERE result = 'refused' ORDER BY at DESC LIMIT ?)", (MAX_REFUSED_KEPT,))

    # -- what the device sends ------------------------------------------------------------

    def enqueue(self, message_id: str, kind: str, body: bytes, at: int) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO outbox (id, kind, body, created_at) VALUES (?, ?, ?, ?)",
                       (message_id, kind, body.decode(), at))

    def outgoing(self, limit: int = 100) -> list[Outgoing]:
        return [Outgoing(r[0], r[1], r[2], r[3].encode(), r[4]) for r in self._db.execute(
            "SELECT seq, id, kind, body, created_at FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
            (limit,))]

    def mark_sent(self, message_ids: list[str], at: int) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE outbox SET sent_at = ? WHERE id = ?", [(at, i) for i in message_ids])
            db.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?", (at - 7 * 86_400,))

    # -- the guardian code and consent ----------------------------------------------------

    def code_secret(self) -> tuple[bytes, int] | None:
        """(secret, unlock minutes) provisioned by a signed decision, if any."""
        secret = self._meta("code_secret")
        if secret is None:
            return None
        return bytes.fromhex(secret), int(self._meta("code_unlock_minutes") or 30)

    def set_code_secret(self, secret: bytes, unlock_minutes: int) -> None:
        with self._transaction() as db:
            self._set(db, "code_secret", secret.hex())
            self._set(db, "code_unlock_minutes", str(unlock_minutes))

    def consent(self) -> Consent | None:
        value = self._meta("consent")
        if value is None:
            return None
        data = json.loads(value)
        return Consent(data["notice"], data["usage_reports"], data["push_notifications"])

    def set_consent(self, consent: Consent) -> None:
        with self._transaction() as db:
            self._set(db, "consent", json.dumps(vars(consent)))

    # -- unpairing ------------------------------------------------------------------------

    def forget(self) -> None:
        """Unpairing: the keyring, the answers, the secret and the consent are gone; what
        is still to be sent (the deletion receipt) stays in the outbox."""
        with self._transaction() as db:
            db.execute("DELETE FROM keyring")
            db.execute("DELETE FROM answered")
            db.execute("DELETE FROM received")
            db.execute("DELETE FROM meta")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
