"""What the agent tells systemd while it runs (sd_notify(3)): a reload bracketed by
`RELOADING=1` and `READY=1`, and a `STATUS=` line kept current for `systemctl status`.

A reload (SIGHUP, `systemctl reload`) sends `RELOADING=1` with `MONOTONIC_USEC=` (systemd
253's Type=notify-reload requires that timestamp to match the reload to its signal; 252
ignores it), loads the policy file, then `READY=1` with a `STATUS=` saying which version
is in force, or, on a rejected policy, naming the error and `ERRNO=22` (EINVAL, shown as
the unit's StatusErrno). systemd has no notification that fails a reload job: on 252 (and
253+ with ExecReload=) the job's result is ExecReload's exit status, so the unit's
ExecReload must wait for this outcome for `systemctl reload` to report a rejected policy
(agent/runtime/README.md). Between reloads, each decision updates `STATUS=` ("enforcing
policy version 3: locked until 16:30 (budget_spent)"), sent when the text changes and at
least every REFRESH seconds; Agent.run's READY=1 carries the first decision's line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agent.core.calendar import zone
from agent.core.decision import Decision
from agent.os import sdnotify

log = logging.getLogger("minormode.agent")

EINVAL = 22
REFRESH = 30.0  # seconds: STATUS= is re-sent at least this often while the agent decides
STATUS_MAX = 200  # systemctl shows one line; a policy error can be long


# seconds a start phase may take past the unit's TimeoutStartSec= (an emulated Pi 3B's
# exec gate start: 14 s idle, 6x that on a loaded host)
START_PHASE_BUDGET = 120.0


class StartProgress:
    """Before READY=1: each start phase is named in `STATUS=` ("starting: exec gate") and
    given `EXTEND_TIMEOUT_USEC=` (systemd >= 236), so a slow card or a loaded board (a first
    boot hashing every app, an emulated Pi) gets the time that a start making progress
    needs, while a phase that hangs still fails the start. `done` logs where the time went,
    one line, for the journal."""

    def __init__(self, send: Callable[..., bool] = sdnotify.notify,
                 monotonic: Callable[[], float] = time.monotonic,
                 budget: float = START_PHASE_BUDGET) -> None:
        self.send, self.monotonic, self.budget = send, monotonic, budget
        self._began = self._at = monotonic()
        self._phase = ""
        self._took: list[tuple[str, float]] = []  # (phase, seconds), in order

    def phase(self, name: str) -> None:
        self._close()
        self._phase = name
        self.send(f"STATUS=starting: {name}", f"EXTEND_TIMEOUT_USEC={int(self.budget * 1_000_000)}")

    def done(self) -> None:
        """Log the start's seconds so far, with each phase's share."""
        self._close()
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self._took)
        log.info("started in %.1f s (%s)", self.monotonic() - self._began, parts or "no phases")

    def _close(self) -> None:
        now = self.monotonic()
        if self._phase:
            self._took.append((self._phase, now - self._at))
        self._phase, self._at = "", now


class ServiceNotifier:
    """The agent's side of the notify protocol after READY=1 (Agent.run sends the first)."""

    def __init__(self, send: Callable[..., bool] = sdnotify.notify,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.send = send
        self.monotonic = monotonic
        self._status = ""
        self._sent_at = -REFRESH

    def decided(self, decision: Decision, _previous: Decision | None) -> None:
        """An Agent subscriber: STATUS= follows the decision, at most once per change of text."""
        self._set_status(describe(decision))

    def reload(self, load: Callable[[], tuple[bool, str, int]]) -> bool:
        """Run `load` (-> ok, message, version in force) inside RELOADING=1 ... READY=1."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                  "STATUS=reloading the policy")
        ok, message, version = load()
        if ok:
            self._status = f"enforcing policy version {version}: reloaded"
            self.send("READY=1", f"STATUS={self._status}")
        else:
            first = message.strip().splitlines()[0] if message.strip() else "rejected"
            self._status = _one_line(f"policy rejected, keeping version {version}: {first}")
            self.send("READY=1", f"STATUS={self._status}", f"ERRNO={EINVAL}")
        self._sent_at = self.monotonic()
        return ok

    def _set_status(self, text: str) -> None:
        now = self.monotonic()
        if text != self._status or now - self._sent_at >= REFRESH:
            self._status, self._sent_at = text, now
            self.send(f"STATUS={text}")


def describe(decision: Decision) -> str:
    """One line for `systemctl status`: locked until when and why, or the minutes left."""
    tz = zone(decision.timezone)
    if decision.locked:
        why = ", ".join(r.value for r in decision.reasons)
        until = f" until {decision.unlock_at.astimezone(tz):%H:%M}" if decision.unlock_at else ""
        state = f"locked{until} ({why})"
    elif decision.remaining_seconds is None:
        state = "unlocked, no limit ahead"
    else:
        state = f"unlocked, {decision.remaining_seconds // 60} min left"
    return f"enforcing policy version {decision.policy_version}: {state}"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= STATUS_MAX else text[: STATUS_MAX - 1] + "…"
