"""What an accepted guardian message does on the device, through the Agent and never around it.

One handler per message kind, each idempotent by message id (a grant's id is the message
id; a purchase already settled the same way counts as done), because a crash between an
effect and its recorded answer makes the inbox apply the message again when it comes back.
A handler that cannot apply a valid message (an invalid policy, a purchase that is no
longer pending, a time already past) raises `EffectRefused`: nothing changed, and the
guardian is told why in the signed ack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.parse import PolicyError, policy_from_mapping
from agent.core.policy import Policy
from agent.store.events import Event, EventKind, EventSink
from agent.store.ledger import LedgerError, PurchaseStatus
from agent.store.retention import DeletionReceipt
from agent.trust.store import Consent as StoredConsent
from agent.trust.store import TrustStore
from protocol.accept import Accepted
from protocol.messages import (
    Consent,
    DecisionKind,
    DeleteData,
    DenyRequest,
    EnterMinorMode,
    GrantTime,
    PolicyMessage,
    PurchaseDecision,
    Receipt,
    SetGuardianCode,
    Until,
)

log = logging.getLogger("minormode.trust")


class EffectRefused(Exception):  # noqa: N818 - a refusal, not a failure of the agent
    """A valid message this device cannot apply now; `reason` goes into the signed ack."""


class TrustedAgent(Protocol):
    """What the effects need of the running agent (`agent.runtime.agent.Agent` has it)."""

    paired: Callable[[], bool]  # set by the trust layer: a paired device refuses local files

    @property
    def policy(self) -> Policy: ...

    @property
    def events(self) -> EventSink: ...

    def now(self) -> datetime: ...

    def tick(self) -> object: ...

    def apply_policy(self, policy: Policy, source: str, *, signed: bool = False) -> object: ...

    def grant_minutes(self, minutes: int, source: GrantSource, reason: str = "",
                      grant_id: str | None = None) -> Grant: ...

    def add_grant(self, grant: Grant, reason: str = "") -> None: ...

    def end_grants(self, kinds: frozenset[GrantKind]) -> int: ...

    def delete_child_data(self) -> int: ...

    def reset_to_factory(self, why: str) -> None: ...


class RequestAnswers(Protocol):
    """The D-Bus controller's side of the child's time requests (it tells the child)."""

    def answer_request(self, request_id: str, approved: bool, minutes: int = 0,
                       grant_id: str | None = None) -> bool: ...


class PurchaseLedger(Protocol):
    def decide(self, request_id: str, approve: bool, now: datetime) -> object: ...

    def get(self, request_id: str) -> object: ...

    def delete_all(self) -> int: ...


class SealedJournal(Protocol):
    def delete_all(self, reason: str) -> DeletionReceipt: ...

    def forget_guardians(self) -> None: ...


@dataclass
class AgentEffects:
    agent: TrustedAgent
    trust: TrustStore
    ledger: PurchaseLedger
    journal: SealedJournal
    send_receipt: Callable[[Receipt], None]
    requests: RequestAnswers | None = None  # None without D-Bus (no child to tell)
    on_code_secret: Callable[[], None] = lambda: None
    on_purchase_decided: Callable[[], None] = lambda: None  # the broker signals Decided at once

    def apply(self, accepted: Accepted) -> str:
        """Apply one accepted message; returns what was done, for the ack."""
        payload, body = accepted.payload, accepted.body
        who = accepted.signer.label or accepted.signer.id
        if isinstance(payload, PolicyMessage):
            return self._policy(payload, body.seq, who, accepted.signer.id)
        if isinstance(payload, Consent):
            self.trust.set_consent(StoredConsent(payload.notice, payload.usage_reports,
                                                 payload.push_notifications))
            return f"consent to notice {payload.notice} recorded"
        if isinstance(payload, GrantTime):
            return self._grant(payload, body.id)
        if isinstance(payload, DenyRequest):
            self._answer(payload.request_id, False, 0, body.id)
            return "request denied"
        if isinstance(payload, PurchaseDecision):
            return self._purchase(payload)
        if isinstance(payload, Until):
            return self._until(payload, body.id)
        if isinstance(payload, EnterMinorMode):
            ended = self.agent.end_grants(frozenset({GrantKind.UNLOCK, GrantKind.LEAVE}))
            self.agent.tick()
            return f"minor mode back in force ({ended} exceptions ended)"
        if isinstance(payload, SetGuardianCode):
            before = self.trust.code_secret()
            self.trust.set_code_secret(payload.secret, payload.unlock_minutes)
            if before is None or before[0] != payload.secret:
                # a new secret: the old one's used step means nothing. The same secret sent
                # again (to seal it to a newly admitted guardian) keeps it, or a code just
                # used would open the device once more within its step
                self.on_code_secret()
                return "guardian code secret set"
            return "guardian code secret unchanged (sent again)"
        if isinstance(payload, DeleteData):
            return self._delete(payload, body.id)
        raise EffectRefused(f"{body.type.value} messages are not applied on a device")

    # -- handlers ------------------------------------------------------------------------

    def _policy(self, message: PolicyMessage, version: int, who: str, kid: str) -> str:
        try:
            policy = policy_from_mapping(message.policy, f"<signed policy v{version} from {who}>")
        except PolicyError as exc:
            self.agent.events.record(Event(EventKind.POLICY_REJECTED, self.agent.now(), {
                "source": f"signed by {kid}", "why": str(exc)}))
            raise EffectRefused(f"the policy does not validate: {exc}") from exc
        self.agent.apply_policy(policy, f"signed by {who} ({kid})", signed=True)
        self.agent.tick()
        return f"policy version {version} in force"

    def _grant(self, grant: GrantTime, message_id: str) -> str:
        if grant.request_id is not None and self.requests is not None:
            self._answer(grant.request_id, True, grant.minutes, message_id)
        else:
            why = "guardian" if grant.request_id is None else f"request {grant.request_id}"
            self.agent.grant_minutes(grant.minutes, GrantSource.DASHBOARD, why, grant_id=message_id)
            self.agent.tick()
        return f"{grant.minutes} minutes granted"

    def _answer(self, request_id: str, approved: bool, minutes: int, message_id: str) -> None:
        if self.requests is None:
            if not approved:
                return  # no D-Bus, nobody to tell; nothing to undo
            raise EffectRefused("no session layer to answer the request")
        self.requests.answer_request(request_id, approved, minutes, grant_id=message_id)

    def _purchase(self, decision: PurchaseDecision) -> str:
        now = self.agent.now()
        try:
            self.ledger.decide(decision.request_id, decision.approve, now)
        except LedgerError as exc:
            want = PurchaseStatus.APPROVED if decision.approve else PurchaseStatus.DENIED
            got = self.ledger.get(decision.request_id)
            if getattr(got, "status", None) is want:
                return f"purchase already {want.value}"  # a redelivery after a crash
            raise EffectRefused(f"purchase {decision.request_id}: {exc}") from exc
        self.on_purchase_decided()
        return "purchase approved" if decision.approve else "purchase denied"

    def _until(self, decision: Until, message_id: str) -> str:
        now = self.agent.now()
        until = datetime.fromtimestamp(decision.until, UTC)
        if until <= now:
            raise EffectRefused(f"{decision.kind.value} until {until.isoformat()} is already over")
        kind, ends = {
            DecisionKind.LOCK: (GrantKind.LOCK, frozenset({GrantKind.UNLOCK, GrantKind.LEAVE})),
            DecisionKind.UNLOCK: (GrantKind.UNLOCK, frozenset({GrantKind.LOCK})),
            DecisionKind.LEAVE_MINOR_MODE: (GrantKind.LEAVE, frozenset({GrantKind.LOCK})),
        }[decision.kind]
        self.agent.end_grants(ends)
        self.agent.add_grant(Grant(id=message_id, kind=kind, issued_at=now, expires_at=until,
                                   source=GrantSource.DASHBOARD), f"guardian: {decision.kind.value}")
        self.agent.tick()
        return f"{decision.kind.value} until {until.isoformat()}"

    def _delete(self, decision: DeleteData, message_id: str) -> str:
        receipt = self.journal.delete_all(decision.reason)
        purchases = self.ledger.delete_all()
        usage = self.agent.delete_child_data()
        self.send_receipt(Receipt(message_id, decision.reason, receipt.segments, receipt.records,
                                  receipt.up_to_seq, int(receipt.at.timestamp())))
        log.info("guardian deleted the child's data: %d records, %d purchases, %d usage rows",
                 receipt.records, purchases, usage)
        if decision.kind is DecisionKind.UNPAIR:
            self.journal.forget_guardians()
            self.trust.forget()
            self.agent.reset_to_factory("unpaired by the guardian")
            return "unpaired: data deleted, factory default policy in force"
        return f"deleted {receipt.records} records and {purchases} purchases"
