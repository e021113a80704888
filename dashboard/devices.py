"""A device's status as its guardians see it: last contact, queue depth, uploads pending,
the policy version applied (from the device's signed ack) and by whom, and consent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dashboard import consent
from dashboard.sync import queue_depth


def status_view(conn: Connection, row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "status": row.status,
        "paired_at": row.paired_at,
        "last_contact": row.last_contact,
        "queue_depth": queue_depth(conn, row.id),
        "pending_uploads": max(0, row.reported_head - row.cursor),
        "journal_cursor": row.cursor,
        "policy_queued": row.policy_seq,
        "policy_applied": row.applied_seq,
        "policy_applied_at": row.applied_at,
        "policy_applied_by": row.applied_by,
        "retention_days": row.retention_days,
        "consent": consent.effective(conn, row.id).view(),
    }
