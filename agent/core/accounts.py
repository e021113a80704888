"""The child's accounts: one unix uid or several, whose time is pooled."""

from __future__ import annotations

from collections.abc import Collection


def uid_set(uids: int | Collection[int]) -> frozenset[int]:
    """One uid or several, as a set (the daemon refuses root as the child; development
    mode and tests may use their own uid, which can be root)."""
    found = frozenset([uids] if isinstance(uids, int) else uids)
    if not found:
        raise ValueError("child uids: need at least one")
    return found
