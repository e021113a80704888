"""Which running apps the Decision stops, and what the child is told."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.core.decision import AppAccess, AppBlockReason, AppVerdict
from agent.core.policy import AppDefault, AppRules
from agent.execgate.appstop import apps_to_stop, stop_message
from agent.execgate.catalogue import AppInfo
from agent.execgate.events import blocked_event, blocked_message, outage_event
from agent.execgate.loop import Blocked
from agent.execgate.supervisor import GateOutage
from agent.store.events import EventKind


def _access(locked: bool, spent: frozenset[str] = frozenset()) -> AppAccess:
    rules = AppRules(
        default=AppDefault.DENY,
        allowed=frozenset({"game", "chess"}),
        allowed_categories=frozenset(),
        blocked=frozenset(),
        blocked_categories=frozenset(),
        always_allowed=frozenset({"phone"}),
        always_allowed_categories=frozenset(),
        education_categories=frozenset(),
        limits_minutes={"game": 30},
        categories={},
        payers=frozenset(),
    )
    return AppAccess(rules, locked, False, True, spent, frozenset())


APPS = {
    "shell": AppInfo("shell", "Shell", frozenset(), (), frozenset(), needed_by_session=True),
    "game": AppInfo("game", "Game", frozenset(), (), frozenset()),
}


def test_spent_limit_stops_only_that_app() -> None:
    out = apps_to_stop(_access(False, frozenset({"game"})), ["game", "chess", "phone"], APPS)
    assert out == {"game": AppVerdict(False, AppBlockReason.LIMIT_SPENT, False)}


def test_end_of_budget_stops_all_but_always_allowed_and_session_apps() -> None:
    out = apps_to_stop(_access(True), ["game", "chess", "phone", "shell", "stranger"], APPS)
    assert sorted(out) == ["chess", "game", "stranger"]
    assert out["chess"].reason is AppBlockReason.DEVICE_LOCKED
    assert out["stranger"].reason is AppBlockReason.NOT_ALLOWED


def test_messages_and_events() -> None:
    at = datetime(2026, 11, 22, tzinfo=UTC)
    spent = AppVerdict(False, AppBlockReason.LIMIT_SPENT, False)
    assert stop_message("Game", spent, "en") == "Game's time for today is used up."
    assert stop_message("Game", AppVerdict(False, AppBlockReason.BLOCKED, False), "zh-CN") == "现在不能使用 Game。"
    b = Blocked("game", "limit_spent", "/usr/bin/game", 1000)
    assert blocked_message(b, APPS, "en") == "Game's time for today is used up."
    assert blocked_message(b, APPS, "zh-CN") == "Game 今天的时间已经用完了。"
    assert blocked_message(Blocked(None, "unknown", "/x", 1000), APPS, "en") == "This program is not allowed now."
    assert blocked_message(Blocked(None, "unknown", "/x", 1000), APPS, "zh-CN") == "这个程序现在不能使用。"
    event = blocked_event(b, at)
    assert event.kind is EventKind.APP_BLOCKED and event.data["app_id"] == "game"
    end = outage_event(GateOutage(False, 5.0, "gate exited with -9", 0.1234), at)
    assert end.kind is EventKind.GATE_OUTAGE
    assert dict(end.data) == {"phase": "end", "cause": "gate exited with -9", "seconds": 0.123}
