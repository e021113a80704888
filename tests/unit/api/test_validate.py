"""Argument rules of the agent's D-Bus methods (pure; the bus tests cover the wiring)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.api import validate as v
from agent.api.controller import ReportKind


def test_minutes_bounds() -> None:
    assert v.minutes("minutes", 1, v.REQUEST_MINUTES) == 1
    assert v.minutes("minutes", 240, v.REQUEST_MINUTES) == 240
    for bad in (0, 241, 2**32 - 1):
        with pytest.raises(v.InvalidArgumentError, match=f"minutes: {bad} is outside 1..240"):
            v.minutes("minutes", bad, v.REQUEST_MINUTES)


@pytest.mark.parametrize("ok", ["", "homework\nplease", "作业 ✍️", "family 👨\u200d👩\u200d👧", "\t"])
def test_text_accepts_ordinary_text(ok: str) -> None:
    assert v.text("note", ok, 50) == ok


@pytest.mark.parametrize(("bad", "why"), [
    ("a" * 51, "51 characters, at most 50"),
    ("\x00", "U+0000"),
    ("\x1b[2J", "U+001B"),
    ("abc\u202e", "character 3 (U+202E)"),  # right-to-left override: spoofing in the dashboard
    ("\ue000", "U+E000"),  # private use
])
def test_text_refuses(bad: str, why: str) -> None:
    with pytest.raises(v.InvalidArgumentError, match=rf"^note: .*{re.escape(why)}"):
        v.text("note", bad, 50)


def test_report_kind() -> None:
    assert v.report_kind("harmful_content") is ReportKind.HARMFUL_CONTENT
    with pytest.raises(v.InvalidArgumentError, match="kind: 'Help' is not one of help, "):
        v.report_kind("Help")


def test_code_format() -> None:
    assert v.guardian_code("01234567") == "01234567"
    for bad in ("", "0123456", "012345678", "0123456x", "٠١٢٣٤٥٦٧"):
        with pytest.raises(v.InvalidArgumentError, match="exactly 8 digits"):
            v.guardian_code(bad)


def test_policy_path(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("x")
    assert v.policy_path(str(f)) == f
    for bad, why in [("", "1..4096"), ("p.toml", "not absolute"), (str(tmp_path), "regular file"),
                     (str(tmp_path / "none"), "regular file"), ("/" + "a" * 5000, "1..4096")]:
        with pytest.raises(v.InvalidArgumentError, match=why):
            v.policy_path(bad)


@given(st.text(max_size=80))
def test_text_accepts_or_names_the_problem(note: str) -> None:
    try:
        clean = v.text("note", note, 60)
    except v.InvalidArgumentError as exc:
        assert str(exc).startswith("note: ")
    else:
        assert clean == note and len(note) <= 60
        assert all(ch in "\n\t\u200c\u200d" or not unicodedata.category(ch).startswith("C")
                   for ch in note)


@given(st.text(max_size=12))
def test_only_eight_ascii_digits_are_codes(code: str) -> None:
    ok = len(code) == 8 and all(c in "0123456789" for c in code)
    try:
        v.guardian_code(code)
    except v.InvalidArgumentError:
        assert not ok
    else:
        assert ok
