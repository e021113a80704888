"""The real Agent on a test clock source, as the daemon builds it (minus the journal)."""

from __future__ import annotations

from pathlib import Path

from agent.os.clocksource import ClockSource
from agent.runtime.agent import Agent
from agent.runtime.clock import TrustedClock
from agent.store.state import StateStore


def agent_on(store: StateStore, source: ClockSource, policy_path: Path | None = None) -> Agent:
    """Trusted clock from the store's watermark; every event (tamper ones too) to the store."""
    return Agent(store, TrustedClock(source, store.load_watermark(), events=store), policy_path)
