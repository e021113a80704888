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

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from agent.api.controller import AdminResult, CodeResult, LimitExceededError, ReportKind, Status
from agent.api.port import AgentPort
from agent.core import guardian_code
from agent.core.flood import Admit, own_gates
from agent.core.grants import Grant, GrantKind, GrantSource, TimeRequest
from agent.locale import messages
from agent.store.events import Event, EventKind

MAX_PENDING = 20
AnswerHook = Callable[[str, bool, int, str], None]
SecretSource = Callable[[], tuple[bytes, int] | None]
SyncFacts = Callable[[], tuple[str, int, int]]  # (policy signer, last contact, pending uploads)
FilterFacts = Callable[[], tuple[str, int]]  # (filter problems, DNS events dropped)


class AgentController:
    def __init__(self, agent: AgentPort, *, guardian_secret: bytes | None = None,
                 unlock_minutes: int = 30, answered: AnswerHook | None = None,
                 secret_source: SecretSource | None = None) -> None:
        """`secret_source` (the trust layer: the secret a guardian's signed decision set,
        with its unlock minutes) wins over `guardian_secret` (a file, before pairing)."""
        self.agent = agent
        self.secret = guardian_secret
        self.unlock_minutes = unlock_minutes
        self.secret_source = secret_source
        self.sync_facts: SyncFacts = lambda: ("", 0, 0)  # the trust and sync layers set it
        self.filter_facts: FilterFacts = lambda: ("", 0)  # the network filter, when it runs
        self.answered = answered  # the service's request_answered, to tell the child
        # Every write a call can cause passes the flood gates first. The daemon sets the
        # FloodSink's `admit` (its refusal counts reach the journal); gates of its own otherwise.
        self.admit: Admit = own_gates(time.monotonic)
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
                          policy.version, timezone=policy.timezone)
        reason = d.reason
        signer, contact, pending = self.sync_facts()
        problems, dropped = self.filter_facts()
        return Status(
            minor_mode=d.minor_mode,
            age_band=policy.age_band.value,
            locked=d.locked,
            lock_reason=reason.value if reason else "",
            lock_message=messages.time_up(reason, lang, lock_screen=d.lock_screen,
                                          emergency_only=d.apps.emergency_only,
                                          back=messages.back_at(d)) if reason else "",
            remaining_seconds=-1 if d.remaining_seconds is None else d.remaining_seconds,
            next_change=int(d.next_change.at.timestamp()) if d.next_change else 0,
            used_seconds=d.used_seconds,
            budget_seconds=-1 if d.budget_seconds is None else d.budget_seconds,
            language=lang,
            policy_version=d.policy_version,
            policy_signer=signer,
            last_contact=contact,
            pending_uploads=pending,
            filter_problems=problems,
            dns_events_dropped=dropped,
            timezone=policy.timezone,
        )

    def request_more_time(self, minutes: int, note: str) -> str:
        if len(self.pending) >= MAX_PENDING or not self.admit(EventKind.TIME_REQUESTED,
                                                              EventKind.TIME_REQUESTED.value):
            raise LimitExceededError(messages.message(messages.Key.TOO_MANY_REQUESTS, self.language))
        rid = uuid.uuid4().hex
        self.pending[rid] = TimeRequest(rid, minutes, note)
        self._save_pending()
        self.agent.events.record(Event(EventKind.TIME_REQUESTED, self.agent.now(),
                                      {"request_id": rid, "minutes": minutes, "note": note}))
        return rid

    def answer_request(self, request_id: str, approved: bool, minutes: int = 0,
                       grant_id: str | None = None) -> bool:
        """The guardian's answer (from sync): grant `minutes` (or, if 0, the minutes asked)
        and tell the child. Works for a request asked before a restart too, when the answer
        names its minutes. Returns whether the request was pending here."""
        request = self.pending.pop(request_id, None)
        if request is not None:
            self._save_pending()
        asked = request.minutes if request is not None else 0
        granted = (minutes or asked) if approved else 0
        if granted:
            self.agent.grant_minutes(granted, GrantSource.DASHBOARD, f"request {request_id}",
                                     grant_id=grant_id)
            self.agent.tick()
        if approved and not granted:
            return False  # an unknown request and no minutes named: nothing to grant
        key = messages.Key.REQUEST_APPROVED if approved else messages.Key.REQUEST_DENIED
        text = messages.message(key, self.language, minutes=granted)
        if self.answered is not None:
            self.answered(request_id, approved, granted, text)
        return request is not None

    def report(self, kind: ReportKind, note: str) -> str:
        """Capped like `request_more_time` (it had no cap: each call was a journal record and
        a sealed message for the guardian): a flood is refused and counted."""
        if not self.admit(EventKind.REPORT, kind.value):
            raise LimitExceededError(messages.message(messages.Key.TOO_MANY_REQUESTS, self.language))
        rid = uuid.uuid4().hex
        self.agent.events.record(Event(EventKind.REPORT, self.agent.now(),
                                      {"report_id": rid, "kind": kind.value, "note": note}))
        return rid

    def _code_secret(self) -> tuple[bytes, int] | None:
        provisioned = self.secret_source() if self.secret_source is not None else None
        if provisioned is not None:
            return provisioned
        return None if self.secret is None else (self.secret, self.unlock_minutes)

    def secret_rotated(self) -> None:
        """A guardian set a new secret: the old secret's used step means nothing for the
        new codes (the back-off stays: wrong guesses were wrong whatever the secret)."""
        self.code_state = replace(self.code_state, last_used=None)
        self.agent.store.save_guardian_code_state(self.code_state)

    def enter_guardian_code(self, code: str) -> CodeResult:
        lang = self.language
        current = self._code_secret()
        if current is None:
            return CodeResult(False, messages.message(messages.Key.CODE_NOT_PAIRED, lang))
        secret, unlock_minutes = current
        now = self.agent.now()
        attempt = guardian_code.check(secret, code, now, self.code_state)
        changed, self.code_state = attempt.state != self.code_state, attempt.state
        # Durable before the answer: a reboot must not reset the back-off or reopen a used code.
        # A guess refused during the back-off changes nothing, and writes nothing.
        if changed:
            self.agent.store.save_guardian_code_state(attempt.state)
        outcome = guardian_code.Outcome
        if attempt.outcome is outcome.ACCEPTED:
            grant = Grant(id=uuid.uuid4().hex, kind=GrantKind.UNLOCK, issued_at=now,
                          expires_at=now + timedelta(minutes=unlock_minutes),
                          source=GrantSource.GUARDIAN_CODE)
            self.agent.add_grant(grant, "guardian code")
            self.agent.tick()
            return CodeResult(True, messages.message(messages.Key.CODE_ACCEPTED, lang,
                                                     minutes=unlock_minutes))
        if attempt.outcome is outcome.REUSED:
            return CodeResult(False, messages.message(messages.Key.CODE_USED, lang))
        if attempt.retry_after > timedelta(0):
            return CodeResult(False, messages.code_wait(attempt.retry_after, lang))
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
