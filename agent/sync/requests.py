"""The child's requests as sealed messages for the guardians (PROTOCOL.md §6.2).

The controller and the payments broker already record each request as a journal event
(TIME_REQUESTED, REPORT, a PURCHASE that waits for the guardian); `RequestCollector` sees
those events as they pass (`agent.sync.daily.TallyingSink`'s `also`), signs a `request`
message, seals it to every active guardian, and queues it in the trust store's outbox for
the sync client, which sends it at once. The cleartext beside it is only its kind.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from agent.store.events import Event, EventKind
from agent.trust.layer import TrustLayer
from protocol.messages import REPORT_KINDS, ChildRequest, RequestKind
from protocol.sealing import request_ctx

log = logging.getLogger("minormode.sync")
HEX32 = re.compile(r"[0-9a-f]{32}")


def request_of(event: Event) -> ChildRequest | None:
    """The request an event stands for, if it is one the guardian must answer or read."""
    d = event.data
    if event.kind is EventKind.TIME_REQUESTED:
        rid, minutes = str(d.get("request_id", "")), d.get("minutes")
        if HEX32.fullmatch(rid) and isinstance(minutes, int) and 1 <= minutes <= 240:
            note = str(d.get("note", ""))[:500]
            return ChildRequest(rid, RequestKind.MORE_TIME, minutes=minutes, note=note)
    elif event.kind is EventKind.REPORT:
        rid, kind = str(d.get("report_id", "")), str(d.get("kind", ""))
        if HEX32.fullmatch(rid) and kind in REPORT_KINDS:
            return ChildRequest(rid, RequestKind.REPORT, report_kind=kind, note=str(d.get("note", ""))[:2000])
    elif event.kind is EventKind.PURCHASE and d.get("decision") == "pending":
        rid, amount = str(d.get("request_id", "")), d.get("amount")
        if HEX32.fullmatch(rid) and isinstance(amount, int) and amount > 0:
            return ChildRequest(rid, RequestKind.PURCHASE, app_id=str(d.get("app_id", ""))[:255],
                                item=str(d.get("item", ""))[:200] or "?", amount=amount,
                                currency=str(d.get("currency", "CNY"))[:3])
    return None


class RequestCollector:
    """An event hook: requests become sealed, signed messages in the outbox."""

    def __init__(self, trust: TrustLayer, clock: Callable[[], int],
                 poke: Callable[[], None] = lambda: None) -> None:
        self.trust, self.clock, self.poke = trust, clock, poke

    def __call__(self, event: Event) -> None:
        request = request_of(event)
        if request is None or not self.trust.store.paired:
            return
        made = self.trust.sealed_for_guardians(request, request_ctx)
        if made is None:
            return
        message_id, sealed = made
        body = json.dumps({"id": message_id, "kind": request.kind.value, "sealed": sealed.to_json()})
        self.trust.store.enqueue(message_id, "request", body.encode(), self.clock())
        log.info("request %s (%s) queued for the guardians", request.request_id, request.kind.value)
        self.poke()
