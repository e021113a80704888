"""Which consent answers still stand after the notice changes."""

from __future__ import annotations

import pytest

from dashboard import consent
from dashboard.consent import NoticeVersion


def test_material_change_asks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = consent.NOTICES[0].texts
    monkeypatch.setattr(
        consent,
        "NOTICES",
        (
            NoticeVersion("v1", True, texts),
            NoticeVersion("v2", False, texts),
            NoticeVersion("v3", True, texts),
            NoticeVersion("v4", False, texts),
        ),
    )
    assert not consent.answers_current("v1") and not consent.answers_current("v2")
    assert consent.answers_current("v3") and consent.answers_current("v4")
    assert not consent.answers_current("unknown")
    assert consent.current().version == "v4"


def test_both_languages_have_every_section() -> None:
    for notice in consent.NOTICES:
        assert set(notice.texts) == {"en", "zh-CN"}
        for text in notice.texts.values():
            assert set(text["sections"]) == set(consent.SECTIONS)
            assert all(len(v) > 20 for v in text["sections"].values())
            assert set(text["optional"]) == {"usage_reports", "push_notifications"}
