"""What the D-Bus service may ask of the rest of the agent: the `Controller` protocol.

The service validates arguments and authorises callers; the controller acts. Keeping the
boundary this narrow means the service can be tested against a small in-memory controller
and wired to the daemon's Agent by `agent.api.agent_controller.AgentController`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class LimitExceededError(RuntimeError):
    """The caller asked too often (pending requests); nothing was queued."""


class ReportKind(StrEnum):
    """What the child reports to the guardian (Reg. 26: help, harmful content, bullying)."""

    HELP = "help"
    HARMFUL_CONTENT = "harmful_content"
    BULLYING = "bullying"
    OTHER = "other"


@dataclass(frozen=True)
class Status:
    """The agent's state as the child and tools see it (the service's properties)."""

    minor_mode: bool
    age_band: str
    locked: bool
    lock_reason: str  # a LockReason value, "" when unlocked
    lock_message: str  # the reason in the child's language, "" when unlocked
    remaining_seconds: int  # until the next lock with continuous use; -1 = none ahead
    next_change: int  # unix seconds of the next change; 0 = none
    used_seconds: int
    budget_seconds: int  # -1 = no daily total
    language: str
    policy_version: int
    policy_signer: str = ""  # the guardian who signed the policy in force ("" a local file)
    last_contact: int = 0  # unix seconds of the last exchange with the dashboard, 0 never
    pending_uploads: int = 0  # journal records and messages not yet acknowledged by it
    filter_problems: str = ""  # "adult: no list installed; ..." ("" when the filter is whole)
    dns_events_dropped: int = 0  # blocked lookups the DNS filter could not itemise (a flood)
    timezone: str = ""  # the policy's IANA timezone, for showing the times above as clock times


@dataclass(frozen=True)
class CodeResult:
    granted: bool
    message: str  # in the child's language


@dataclass(frozen=True)
class AdminResult:
    ok: bool
    message: str


class Controller(Protocol):
    def get_status(self) -> Status: ...

    def request_more_time(self, minutes: int, note: str) -> str:
        """Queue a request for the guardian; its id (answered later by RequestAnswered).
        Raises LimitExceededError when too many are pending."""

    def report(self, kind: ReportKind, note: str) -> str:
        """Queue a report for the guardian; its id."""

    def enter_guardian_code(self, code: str) -> CodeResult:
        """Judge an 8-digit guardian code (format already checked)."""

    def load_policy(self, path: Path) -> AdminResult: ...

    def grant_minutes(self, minutes: int, reason: str) -> AdminResult: ...
