"""Attributing processes to app IDs from systemd app units, and running intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.core.usage import Interval
from agent.execgate.apptracker import AppTracker, app_id_from_cgroup, app_id_from_unit

KNOWN = {"org.gnome.Nautilus", "org.example.My-Game", "firefox"}


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("app-gnome-org.gnome.Nautilus-1234.scope", "org.gnome.Nautilus"),
        ("app-flatpak-org.example.My\\x2dGame-5678.scope", "org.example.My-Game"),
        ("app-org.gnome.Nautilus@ab12.service", "org.gnome.Nautilus"),
        ("app-gnome-firefox@x.service", "firefox"),
        ("app-gnome-org.unknown.App-1.scope", None),
        ("app-gnome-org.gnome.Nautilus-1.slice", None),
    ],
)
def test_app_id_from_unit(unit: str, expected: str | None) -> None:
    assert app_id_from_unit(unit, KNOWN) == expected


def test_app_id_from_cgroup_v2_and_v1() -> None:
    v2 = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-99.scope\n"
    v1 = (
        "12:pids:/user.slice\n"
        "1:name=systemd:/user.slice/user-1000.slice/user@1000.service/app.slice/"
        "app-flatpak-org.example.My\\x2dGame-5.scope/sub\n"
    )
    assert app_id_from_cgroup(v2, KNOWN) == "firefox"
    assert app_id_from_cgroup(v1, KNOWN) == "org.example.My-Game"
    assert app_id_from_cgroup("0::/user.slice/session-2.scope\n", KNOWN) is None


def test_tracker_turns_snapshots_into_intervals() -> None:
    t0 = datetime(2026, 11, 22, 9, tzinfo=UTC)
    snaps = iter(
        [
            {"a": frozenset({1})},
            {"a": frozenset({1}), "b": frozenset({2})},
            {"b": frozenset({2}), "a": frozenset()},
            {},
        ]
    )
    tracker = AppTracker(lambda: next(snaps))
    assert tracker.poll(t0).started == {"a"}
    assert tracker.poll(t0 + timedelta(minutes=1)).started == {"b"}
    changes = tracker.poll(t0 + timedelta(minutes=5))
    assert changes.stopped == {"a"} and not changes.started
    now = t0 + timedelta(minutes=7)
    assert tracker.intervals_at(now) == {
        "a": (Interval(t0, t0 + timedelta(minutes=5)),),
        "b": (Interval(t0 + timedelta(minutes=1), now),),
    }
    tracker.poll(now)
    tracker.forget_before(t0 + timedelta(minutes=6))
    assert set(tracker.closed) == {"b"}
