"""The OS wall clock as it is, unchecked.

The stamp for tools that run without the daemon's trusted clock: `minormodectl` writing
the journal (pairing, deleting data) and the standalone DNS filter. The daemon never uses
it: every part it wires gets the trusted time (`agent.core.clock`). A module of its own
so that those tools do not import the clock sources (and asyncio with them).
"""

from __future__ import annotations

from datetime import UTC, datetime


def wall_now() -> datetime:
    return datetime.now(UTC)
