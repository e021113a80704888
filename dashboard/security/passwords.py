"""Argon2id of the browser's auth key, with bounded concurrency.

The browser sends a key derived from the password (PROTOCOL.md §13), never the password;
the server hashes it once more so a stolen database does not let anyone log in. Each hash
costs tens of MiB and a good fraction of a core, so at most `concurrency` run at once and at
most `queue` wait: beyond that the server answers 503 instead of running out of memory.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dashboard.errors import Problem


class Hasher:
    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int, queue: int
    ) -> None:
        self._ph = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._slots = threading.BoundedSemaphore(concurrency)
        self._waiting = 0
        self._queue = queue
        self._lock = threading.Lock()
        self._decoy = self._ph.hash(b"\x00" * 32)

    def _enter(self) -> None:
        with self._lock:
            if self._waiting >= self._queue:
                raise Problem(
                    503, "busy", "too many log-ins at once; try again in a few seconds", retry_after=2
                )
            self._waiting += 1
        self._slots.acquire()

    def _leave(self) -> None:
        self._slots.release()
        with self._lock:
            self._waiting -= 1

    def hash(self, secret: bytes) -> str:
        self._enter()
        try:
            return self._ph.hash(secret)
        finally:
            self._leave()

    def verify(self, stored: str | None, secret: bytes) -> bool:
        """Constant work whether or not the account exists (`stored` None: a decoy hash)."""
        self._enter()
        try:
            self._ph.verify(stored or self._decoy, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        finally:
            self._leave()
        return stored is not None
