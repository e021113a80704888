"""A simulated-clock harness: events at ISO times, expectations on the Decision.

It drives the real `Agent` (trusted clock, state store in a temp dir, `decide`) with a
`ManualClock`. The harness keeps the *true* time; the child may move the device's wall
clock or timezone, reboot, sleep. A whole week runs in milliseconds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.core.decision import Decision, LockReason
from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.parse import policy_from_mapping
from agent.core.policy import DefaultKey, Policy
from agent.dev.clock import ManualClock
from agent.runtime.agent import Agent
from agent.store.state import StateStore
from support.runtime import agent_on

TZ = "Asia/Shanghai"


def iso(text: str, tz: str = TZ) -> datetime:
    """An ISO time; without an offset, local to `tz`."""
    from zoneinfo import ZoneInfo

    t = datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz))).astimezone(UTC)


def policy(**overrides: Any) -> Policy:
    data: dict[str, Any] = {"version": 1, "age_band": "8-12", "timezone": TZ}
    data.update(overrides)
    return policy_from_mapping(data)


class Scenario:
    def __init__(self, tmp: Path, pol: Policy, start: str) -> None:
        self.true = iso(start, pol.timezone)
        self.clock = ManualClock(self.true, boot_id="boot-1", zone="Asia/Shanghai")
        self.store = StateStore(tmp / "state.sqlite")
        self.tmp = tmp
        self.agent = self._agent(pol)
        self.agent.tick()
        self.boots = 1

    def _agent(self, pol: Policy) -> Agent:
        agent = agent_on(self.store, self.clock)
        agent.policy = pol
        return agent

    @property
    def tz(self) -> str:
        return self.agent.policy.timezone

    # --- events -------------------------------------------------------------
    def at(self, text: str) -> Scenario:
        """True time moves to `text`; wall clock and boot time move by the same amount."""
        target = iso(text, self.tz)
        assert target >= self.true, f"scenario time runs forward only: {text}"
        step = timedelta(minutes=1)
        while self.true < target:  # tick as the daemon would, at most a minute apart
            delta = min(step, target - self.true)
            self.true += delta
            self.clock.advance(delta.total_seconds())
            self.agent.tick()
        return self

    def active(self) -> Scenario:
        self.agent.set_counting(True)
        return self

    def idle(self) -> Scenario:
        self.agent.set_counting(False)
        return self

    def sleep_until(self, text: str) -> Scenario:
        """Suspend: nothing ticks, time does not count, CLOCK_BOOTTIME keeps counting."""
        self.agent.set_counting(False)
        target = iso(text, self.tz)
        self.clock.advance((target - self.true).total_seconds())
        self.true = target
        return self

    def set_wall(self, text: str) -> Scenario:
        """The child (or a bug) sets the wall clock; true time does not move."""
        self.clock.set_wall(iso(text, self.tz))
        self.agent.tick()
        return self

    def ntp_sync(self, text: str) -> Scenario:
        """NTP (root's timesyncd) says the true time is `text` (e.g. the RTC was wrong)."""
        self.clock.set_wall(iso(text, self.tz))
        self.clock.ntp_wall = iso(text, self.tz)
        self.true = iso(text, self.tz)
        self.agent.tick()
        return self

    def set_zone(self, name: str) -> Scenario:
        self.clock.zone = name
        self.agent.tick()
        return self

    def kill_and_restart(self) -> Scenario:
        """kill -9: the open interval is lost back to the last checkpoint; a new Agent
        starts from the store (same boot)."""
        self.store.close()
        self.store = StateStore(self.tmp / "state.sqlite")
        self.agent = self._agent(self.agent.policy)
        self.agent.tick()
        return self

    def reboot(self, text: str, wall: str | None = None) -> Scenario:
        """Power off now, back on at true time `text`; the wall clock reads `wall` then."""
        self.agent.checkpoint()
        self.store.close()
        target = iso(text, self.tz)
        self.boots += 1
        self.clock.reboot(f"boot-{self.boots}", iso(wall, self.tz) if wall else target)
        self.true = target
        self.store = StateStore(self.tmp / "state.sqlite")
        self.agent = self._agent(self.agent.policy)
        self.agent.tick()
        return self

    def change_policy(self, **overrides: Any) -> Scenario:
        self.agent.policy = policy(**overrides)
        self.agent.tick()
        return self

    def bonus(self, minutes: int, day: str, expires: str) -> Scenario:
        g = Grant(
            f"bonus-{minutes}-{expires}",
            GrantKind.BONUS,
            self.agent.now(),
            iso(expires, self.tz),
            GrantSource.LOCAL_ADMIN,
            minutes=minutes,
            day=date.fromisoformat(day),
        )
        self.agent.add_grant(g)
        self.agent.tick()
        return self

    def unlock_until(self, text: str) -> Scenario:
        g = Grant(
            f"unlock-{text}",
            GrantKind.UNLOCK,
            self.agent.now(),
            iso(text, self.tz),
            GrantSource.GUARDIAN_CODE,
        )
        self.agent.add_grant(g)
        self.agent.tick()
        return self

    def waive(self, key: DefaultKey, until: str) -> Scenario:
        g = Grant(
            f"waive-{key}-{until}",
            GrantKind.WAIVER,
            self.agent.now(),
            iso(until, self.tz),
            GrantSource.DASHBOARD,
            waives=key,
        )
        self.agent.add_grant(g)
        self.agent.tick()
        return self

    def app(self, app_id: str, categories: frozenset[str], running: bool) -> Scenario:
        if running:
            self.agent.app_started(app_id, categories)
        else:
            self.agent.app_stopped(app_id)
        return self

    # --- expectations ---------------------------------------------------------
    @property
    def decision(self) -> Decision:
        return self.agent.tick()

    def expect(
        self,
        *,
        locked: bool | None = None,
        reason: LockReason | None = None,
        used_min: float | None = None,
        remaining_min: float | None = None,
        warning: int | str | None = "any",
        reminder: bool | None = None,
    ) -> Decision:
        d = self.decision
        if locked is not None:
            assert d.locked is locked, f"locked={d.locked} reasons={d.reasons} at {d.at}"
        if reason is not None:
            assert reason in d.reasons, f"{reason} not in {d.reasons} at {d.at}"
        if used_min is not None:
            assert abs(d.used_seconds - used_min * 60) <= 1, f"used {d.used_seconds / 60:.2f} min"
        if remaining_min is not None:
            assert d.remaining_seconds is not None, "no lock ahead"
            assert abs(d.remaining_seconds - remaining_min * 60) <= 1, (
                f"remaining {d.remaining_seconds / 60:.2f} min"
            )
        if warning != "any":
            assert d.warning_due == warning, f"warning_due={d.warning_due}"
        if reminder is not None:
            assert d.rest_reminder_due is reminder, f"rest_reminder_due={d.rest_reminder_due}"
        return d
