"""The sync store keeps a stretch of journal records the upload went past with the cursor
that went past them, in one transaction, until the event naming them is recorded: a kill
-9 (here: closing without clearing it) between the two keeps it for the next start."""

from __future__ import annotations

from pathlib import Path

from agent.sync.store import Cursor, SyncStore


def test_left_out_is_kept_with_the_cursor_until_said(tmp_path: Path) -> None:
    store = SyncStore(tmp_path / "sync.sqlite")
    store.save_cursor(Cursor("e1", 2, 3))
    assert store.left_out() is None
    store.save_cursor(Cursor("e1", 9, 10), left_out=(3, 4, 9))
    store.close()  # the agent dies here
    again = SyncStore(tmp_path / "sync.sqlite")
    assert again.cursor() == Cursor("e1", 9, 10) and again.left_out() == (3, 4, 9)
    again.save_cursor(Cursor("e1", 12, 13))  # later uploads do not clear it
    assert again.left_out() == (3, 4, 9)
    again.left_out_said()
    assert again.left_out() is None and again.cursor() == Cursor("e1", 12, 13)
    again.close()
