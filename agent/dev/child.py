"""The development mode's simulated child, on the fake logind of a private bus."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, tzinfo

from agent.core.calendar import zone
from agent.core.decision import Decision
from agent.dev.session import DevSession

log = logging.getLogger("minormode.agent")


class DevChild:
    """The agent locks the session through logind; whenever the agent allows use again the
    child unlocks at the screen locker and keeps using the device. Logs what the child sees,
    and the simulated clock once per simulated hour besides, so a long lock (a night) is
    never a silent terminal. A subscriber of the Agent: `agent.subscribe(DevChild(dev))`."""

    def __init__(self, dev: DevSession) -> None:
        self.dev = dev
        self._pending: set[asyncio.Future[None]] = set()
        self._hour_shown: datetime | None = None  # the simulated local hour last logged

    def __call__(self, decision: Decision, previous: Decision | None) -> None:
        tz = zone(decision.timezone)
        at = decision.at.astimezone(tz)
        local = at.strftime("%a %H:%M")
        hour = at.replace(minute=0, second=0, microsecond=0)
        changed = (previous is None
                   or (previous.locked, previous.reasons) != (decision.locked, decision.reasons))
        if not changed and hour != self._hour_shown:
            self._hour_shown = hour
            if decision.locked:
                log.info("%s  still locked (%s) until %s", local, _reasons(decision), _until(decision, tz))
            else:
                left = decision.remaining_seconds
                log.info("%s  in use; %s", local,
                         "no lock ahead" if left is None else f"{left // 60} min until the lock")
        if changed:
            self._hour_shown = hour
            if decision.locked:
                log.info("%s  LOCKED (%s) until %s; used %d min today", local, _reasons(decision),
                         _until(decision, tz), decision.used_seconds // 60)
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


def _reasons(decision: Decision) -> str:
    return ", ".join(r.value for r in decision.reasons)


def _until(decision: Decision, tz: tzinfo) -> str:
    return decision.unlock_at.astimezone(tz).strftime("%a %H:%M") if decision.unlock_at else "?"
