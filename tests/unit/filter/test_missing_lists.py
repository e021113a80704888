"""Loud and honest: a blocked category with no compiled list is named by the filter (log,
a FILTER_LIST_MISSING event the guardian's tamper counts show) and by `explain`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.cli.main import main
from agent.filter.server import DnsFilter
from agent.store.events import EventKind, MemoryEventSink
from agent.sync.daily import Count, tally

ROOT = Path(__file__).parents[3]
EXAMPLE = str(ROOT / "config" / "policies" / "8-12.toml")  # blocks seven categories


def test_the_filter_names_categories_without_a_list_once(
    make_filter: Callable[..., DnsFilter], mkprofile: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = MemoryEventSink()
    with caplog.at_level(logging.ERROR, logger="minormode.filter"):
        flt = make_filter(events=sink, block=("adult", "drugs", "violence"))
    assert flt.missing_lists == ("drugs", "violence")
    assert "drugs: no list installed" in caplog.text and "NOT blocked" in caplog.text
    missing = [e for e in sink.events if e.kind is EventKind.FILTER_LIST_MISSING]
    assert [e.data for e in missing] == [{"categories": ["drugs", "violence"]}]
    assert tally(missing[0], ZoneInfo("UTC")) == Count(missing[0].at.date(), "tamper",
                                                       "filter_list_missing")
    flt.set_profile(mkprofile(block=("adult", "drugs", "violence"), allow=("x.test",)), 2)
    assert len([e for e in sink.events if e.kind is EventKind.FILTER_LIST_MISSING]) == 1
    flt.set_profile(mkprofile(block=("adult", "gambling")), 3)  # every list there: quiet
    assert flt.missing_lists == ()
    flt.set_profile(mkprofile(block=("adult", "games")), 4)
    assert [e.data for e in sink.events if e.kind is EventKind.FILTER_LIST_MISSING][-1] == \
        {"categories": ["games"]}


def test_an_empty_list_is_no_list(make_filter: Callable[..., DnsFilter], lists_dir: Path) -> None:
    from agent.filter.hashlist import encode, write_atomic

    write_atomic(lists_dir / "violence.mmdl", encode([]))
    flt = make_filter(block=("violence",))
    assert flt.missing_lists == ("violence",)


def test_explain_says_which_blocked_categories_have_no_list(
    tmp_path: Path, lists_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC).isoformat()
    assert main(["explain", EXAMPLE, "--at", at, "--lists", str(lists_dir)]) == 0
    captured = capsys.readouterr()
    want = ("drugs: no list installed; proxies-vpn-doh: no list installed; self-harm: no list "
            "installed; violence: no list installed")  # social has a list in the fixture
    assert f"filter NOT in force: {want}" in captured.out
    assert captured.err.startswith("error: ") and "NOT blocked" in captured.err
    assert main(["explain", EXAMPLE, "--at", at, "--lists", str(lists_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["filter"]["missing_lists"] == ["drugs", "proxies-vpn-doh", "self-harm", "violence"]
    assert main(["explain", EXAMPLE, "--at", at, "--lists", str(tmp_path / "none")]) == 0
    assert "adult: no list installed" in capsys.readouterr().out
