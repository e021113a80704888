"""Fixtures for the DNS filter unit tests: profiles and freshly compiled synthetic lists."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.core.policy import FilterProfile, YouTubeMode
from agent.filter.fakeupstream import FakeUpstream
from agent.filter.lists import compile_all
from agent.filter.server import DnsFilter, FilterSettings


def make_profile(
    block: tuple[str, ...] = ("adult", "gambling"),
    allowlist_only: bool = False,
    safesearch: bool = False,
    youtube: YouTubeMode = YouTubeMode.OFF,
    allow: tuple[str, ...] = (),
    deny: tuple[str, ...] = (),
) -> FilterProfile:
    return FilterProfile(
        block_categories=frozenset(block),
        allowlist_only=allowlist_only,
        allowlist_only_during=frozenset(),
        safesearch=safesearch,
        youtube=youtube,
        allow_domains=frozenset(allow),
        block_domains=frozenset(deny),
    )


@pytest.fixture
def lists_dir(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "adult").mkdir(parents=True)
    (src / "adult" / "hosts").write_text(
        "# a hosts file\n0.0.0.0 porn.example\n127.0.0.1 XXX.Example.ORG www.xxx.example.org\n"
        "0.0.0.0 localhost\n"
    )
    (src / "adult" / "adblock.txt").write_text("! adblock\n||adult-site.test^\n||bücher.test^\n")
    (src / "gambling.txt").write_text("casino.test\nbet.casino.test\n*.poker.test\n")
    (src / "social.txt").write_text("chat.social.test\n")
    (src / "guardian-allow.txt").write_text("ok.porn.example\n")
    (src / "guardian-block.txt").write_text("homework-cheats.test\n")
    out = tmp_path / "lists"
    compile_all(src, out)
    return out


@pytest.fixture
def mkprofile() -> type[object]:
    """The `make_profile` factory (test modules cannot import conftest under importlib)."""
    return make_profile  # type: ignore[return-value]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream(overrides={"forcesafesearch.google.com": "216.239.38.120"}).start()
    yield up
    up.stop()


@pytest.fixture
def make_filter(
    lists_dir: Path, upstream: FakeUpstream, mkprofile: Callable[..., Any]
) -> Iterator[Callable[..., DnsFilter]]:
    made: list[DnsFilter] = []

    def make(upstreams: tuple[tuple[str, int], ...] | None = None, **kw: Any) -> DnsFilter:
        settings_kw = {k: kw.pop(k) for k in ("timeout", "block_addresses", "max_pending",
                                              "event_batch", "event_interval", "event_names")
                       if k in kw}
        settings = FilterSettings(
            listen=(("127.0.0.1", 0),),
            upstreams=upstreams or (upstream.addr,),
            lists_dir=lists_dir,
            **settings_kw,
        )
        events = kw.pop("events", None)
        learner = kw.pop("learner", None)
        clock = kw.pop("clock", lambda: datetime(2026, 1, 1, tzinfo=UTC))
        flt = DnsFilter(settings, mkprofile(**kw), 1, events=events, learner=learner, clock=clock)
        flt.start()
        made.append(flt)
        return flt

    yield make
    for flt in made:
        flt.stop()
