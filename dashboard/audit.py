"""The audit trail the family's guardians can read, and the event feed their apps follow.

Every read of a child's (sealed) data, every export and every deletion is recorded with
who did it (account and guardian key id), what kind and how much; the operator's admin
commands write here too. Events carry cleartext metadata only (a request's kind, an ack's
message id), never content.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dashboard.db.schema import audit, events
from dashboard.jsoncol import to_json


def record(
    conn: Connection,
    *,
    family: str,
    device: str | None,
    account_id: int | None,
    kid: str | None,
    action: str,
    detail: dict[str, Any],
    now: int,
) -> None:
    conn.execute(
        audit.insert().values(
            family_id=family,
            device_id=device,
            account_id=account_id,
            kid=kid,
            action=action,
            detail=to_json(detail),
            at=now,
        )
    )


def emit(
    conn: Connection, *, family: str, device: str | None, kind: str, data: dict[str, Any], now: int
) -> None:
    conn.execute(
        events.insert().values(family_id=family, device_id=device, kind=kind, data=to_json(data), at=now)
    )
