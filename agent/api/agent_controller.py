"""The running agent behind the D-Bus service: implements `agent.api.controller.Controller`.

Requests for more time and reports are recorded as events for the guardian (the journal
and sync carry them) and kept pending until `answer_request` is called with the guardian's
answer. The guardian code grants an unlock grant for `unlock_minutes`. The code's
single-use and back-off state and the pending requests are persisted in the state store
before each answer (`ControllerState`), so a reboot neither resets the back-off nor reopens
a used code, and a request asked before a restart can still be answered.

Written against `agent.api.port.AgentPort`, never against the runtime's Agent class.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from agent.api.controller import AdminResult, CodeResult, LimitExceededError, ReportKind, Status
from agent.api.port import AgentPort
from agent.core import guardian_code, messages
from agent.core.grants import Grant, GrantKind, GrantSource, TimeRequest
from agent.store.events import Event, EventKind

MAX_PENDING = 20
AnswerHook = Callable[[str, bool, int, str], None]


class AgentController:
    def __init__(self, agent: AgentPort, *, guardian_secret: bytes | None = None,
                 unlock_minutes: int = 30, answered: AnswerHook | None = None) -> None:
        self.agent = agent
        self.secret = guardian_secret
        self.unlock_minutes = unlock_minutes
        self.answered = answered  # the service's request_answered, to tell the child
        self.code_state = agent.store.guardian_code_state()
        self.pending: dict[str, TimeRequest] = {r.id: r for r in agent.store.pending_requests()}

    def _save_pending(self) -> None:
        """Pending requests outlive a restart: the guardian's answer may come days later."""
        self.agent.store.save_pending_requests(self.pending.values())

    @property
    def language(self) -> str:
        return self.agent.policy.enforcement.language

    def get_status(self) -> Status:
        policy, d = self.agent.policy, self.agent.decision
        lang = policy.enforcement.language
        if d is None:
            return Status(True, policy.age_band.value, False, "", "", -1, 0, 0, -1, lang,
                          policy.version)
        reason = d.reason
        return Status(
            minor_mode=True,
            age_band=policy.age_band.value,
            locked=d.locked,
            lock_reason=reason.value if reason else "",
            lock_message=messages.lock_reason(reason, lang) if reason else "",
            remaining_seconds=-1 if d.remaining_seconds is None else d.remaining_seconds,
            next_change=int(d.next_change.at.timestamp()) if d.next_change else 0,
            used_seconds=d.used_seconds,
            budget_seconds=-1 if d.budget_seconds is None else d.budget_seconds,
            language=lang,
            policy_version=d.policy_version,
        )

    def request_more_time(self, minutes: int, note: str) -> str:
        if len(self.pending) >= MAX_PENDING:
            raise LimitExceededError(messages.message(messages.Key.TOO_MANY_REQUESTS, self.language))
        rid = uuid.uuid4().hex
        self.pending[rid] = TimeRequest(rid, minutes, note)
        self._save_pending()
        self.agent.events.record(Event(EventKind.TIME_REQUESTED, self.agent.now(),
                                      {"request_id": rid, "minutes": minutes, "note": note}))
        return rid

    def answer_request(self, request_id: str, approved: bool, minutes: int = 0) -> bool:
        """The guardian's answer (from sync): grant `minutes` (or, if 0, the minutes asked)
        and tell the child. Works for a request asked before a restart too, when the answer
        names its minutes. Returns whether the request was pending here."""
        request = self.pending.pop(request_id, None)
        if request is not None:
            self._save_pending()
        asked = request.minutes if request is not None else 0
        granted = (minutes or asked) if approved else 0
        if granted:
            self.agent.grant_minutes(granted, GrantSource.DASHBOARD, f"request {request_id}")
            self.agent.tick()
        if approved and not granted:
            return False  # an unknown request and no minutes named: nothing to grant
        key = messages.Key.REQUEST_APPROVED if approved else messages.Key.REQUEST_DENIED
        text = messages.message(key, self.language, minutes=granted)
        if self.answered is not None:
            self.answered(request_id, approved, granted, text)
        return request is not None

    def report(self, kind: ReportKind, note: str) -> str:
        rid = uuid.uuid4().hex
        self.agent.events.record(Event(EventKind.REPORT, self.agent.now(),
                                      {"report_id": rid, "kind": kind.value, "note": note}))
        return rid

    def enter_guardian_code(self, code: str) -> CodeResult:
        lang = self.language
        if self.secret is None:
            return CodeResult(False, messages.message(messages.Key.CODE_NOT_PAIRED, lang))
        now = self.agent.now()
        attempt = guardian_code.check(self.secret, code, now, self.code_state)
        self.code_state = attempt.state
        # Durable before the answer: a reboot must not reset the back-off or reopen a used code.
        self.agent.store.save_guardian_code_state(attempt.state)
        outcome = guardian_code.Outcome
        if attempt.outcome is outcome.ACCEPTED:
            grant = Grant(id=uuid.uuid4().hex, kind=GrantKind.UNLOCK, issued_at=now,
                          expires_at=now + timedelta(minutes=self.unlock_minutes),
                          source=GrantSource.GUARDIAN_CODE)
            self.agent.add_grant(grant, "guardian code")
            self.agent.tick()
            return CodeResult(True, messages.message(messages.Key.CODE_ACCEPTED, lang,
                                                     minutes=self.unlock_minutes))
        if attempt.outcome is outcome.REUSED:
            return CodeResult(False, messages.message(messages.Key.CODE_USED, lang))
        if attempt.retry_after > timedelta(0):
            seconds = int(attempt.retry_after.total_seconds() + 0.999)
            return CodeResult(False, messages.message(messages.Key.CODE_WAIT, lang, seconds=seconds))
        return CodeResult(False, messages.message(messages.Key.CODE_WRONG, lang))

    def load_policy(self, path: Path) -> AdminResult:
        result = self.agent.load_policy(path)
        if result.ok:
            self.agent.tick()
        return AdminResult(result.ok, result.message)

    def grant_minutes(self, minutes: int, reason: str) -> AdminResult:
        grant = self.agent.grant_minutes(minutes, GrantSource.LOCAL_ADMIN, reason)
        self.agent.tick()
        return AdminResult(True, f"{minutes} minutes granted until {grant.expires_at.isoformat()}")
