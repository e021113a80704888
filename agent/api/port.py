"""What the D-Bus layer needs of the running agent: the `AgentPort` protocol.

The controller behind org.minormode.Agent1 (`agent.api.agent_controller`) is written
against this protocol, not against `agent.runtime.agent.Agent`, so the D-Bus layer never
imports the runtime that wires it (no import cycle), and it can be driven by anything that
has these few members. `agent.runtime.agent.Agent` implements it; mypy checks that where
the session layer hands the Agent to the controller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agent.core.decision import Decision
from agent.core.grants import Grant, GrantSource, TimeRequest
from agent.core.guardian_code import CodeState
from agent.core.policy import Policy
from agent.store.events import EventSink


@dataclass(frozen=True)
class PolicyLoad:
    """The answer to loading a policy: whether it took effect, and why not."""

    ok: bool
    message: str


class ControllerState(Protocol):
    """The durable values the controller keeps (`agent.store.state.StateStore` has them)."""

    def guardian_code_state(self) -> CodeState: ...

    def save_guardian_code_state(self, state: CodeState) -> None: ...

    def pending_requests(self) -> list[TimeRequest]: ...

    def save_pending_requests(self, requests: Iterable[TimeRequest]) -> None: ...


class AgentPort(Protocol):
    """The agent as its D-Bus controller sees it."""

    @property
    def policy(self) -> Policy:
        """The policy in force."""

    @property
    def decision(self) -> Decision | None:
        """The last Decision (None before the first tick)."""

    @property
    def events(self) -> EventSink:
        """Where events about the child go (the sealed journal in the daemon)."""

    @property
    def store(self) -> ControllerState: ...

    def now(self) -> datetime:
        """The trusted instant."""

    def tick(self) -> Decision:
        """Decide now and tell every subscriber (after a change the caller made)."""

    def checkpoint(self) -> None:
        """Commit open usage now."""

    def grant_minutes(self, minutes: int, source: GrantSource, reason: str = "") -> Grant: ...

    def add_grant(self, grant: Grant, reason: str = "") -> None: ...

    def load_policy(self, path: Path | None = None) -> PolicyLoad:
        """Parse a policy file and apply it."""

    def apply_policy(self, policy: Policy, source: str) -> PolicyLoad:
        """Make a parsed policy the one in force (or refuse it, naming why)."""
