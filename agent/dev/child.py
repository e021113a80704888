"""The development mode's simulated child, on the fake logind of a private bus."""

from __future__ import annotations

import asyncio
import logging

from agent.core.calendar import zone
from agent.core.decision import Decision
from agent.dev.session import DevSession

log = logging.getLogger("minormode.agent")


class DevChild:
    """The agent locks the session through logind; whenever the agent allows use again the
    child unlocks at the screen locker and keeps using the device. Logs what the child sees.
    A subscriber of the Agent: `agent.subscribe(DevChild(dev))`."""

    def __init__(self, dev: DevSession) -> None:
        self.dev = dev
        self._pending: set[asyncio.Future[None]] = set()

    def __call__(self, decision: Decision, previous: Decision | None) -> None:
        tz = zone(decision.timezone)
        local = decision.at.astimezone(tz).strftime("%a %H:%M")
        if previous is None or (previous.locked, previous.reasons) != (decision.locked, decision.reasons):
            if decision.locked:
                until = decision.unlock_at.astimezone(tz).strftime("%a %H:%M") if decision.unlock_at else "?"
                log.info("%s  LOCKED (%s) until %s; used %d min today", local,
                         ", ".join(r.value for r in decision.reasons), until, decision.used_seconds // 60)
            else:
                left = decision.remaining_seconds
                log.info("%s  unlocked; %s", local,
                         "no lock ahead" if left is None else f"{left // 60} min until the lock")
                unlock = asyncio.ensure_future(self.dev.unlock_as_child())
                self._pending.add(unlock)
                unlock.add_done_callback(self._pending.discard)
        if decision.warning_due and (previous is None or previous.warning_due != decision.warning_due):
            log.info("%s  warning: %d min left", local, decision.warning_due)
        if decision.rest_reminder_due and (previous is None or not previous.rest_reminder_due):
            log.info("%s  rest reminder: %d min of continuous use", local, decision.continuous_seconds // 60)
