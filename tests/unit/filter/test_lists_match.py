"""List compiler and matcher: formats, parents, allow over deny, IDN, case, bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.filter import dnswire as dw
from agent.filter.hashlist import HashList, ListFileError, name_hash
from agent.filter.lists import (
    ListSourceError,
    compile_all,
    compile_category,
    domains_in_line,
)
from agent.filter.match import BLOCK, FORWARD, REWRITE, ListStore, Matcher
from agent.filter.names import normalize_domain


def verdict(m: Matcher, name: str) -> tuple[int, str]:
    v = m.verdict(dw.encode_name(name))
    return v.action, v.reason


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("0.0.0.0 a.test b.test # comment", ["a.test", "b.test"]),
        ("::1 v6.test", ["v6.test"]),
        ("||ads.test^", ["ads.test"]),
        ("||ads.test^$important", ["ads.test"]),
        ("plain.test", ["plain.test"]),
        ("# comment", []),
        ("! adblock comment", []),
        ("   ", []),
    ],
)
def test_line_formats(line: str, names: list[str]) -> None:
    assert domains_in_line(line) == names


@pytest.mark.parametrize("line", ["||ads.test/path^", "@@||ok.test^", "/regex/", "two words"])
def test_unsupported_lines_are_errors(line: str) -> None:
    with pytest.raises(ValueError):
        domains_in_line(line)


def test_normalize() -> None:
    assert normalize_domain("WWW.Example.COM.") == "www.example.com"
    assert normalize_domain("*.Wild.test") == "wild.test"
    assert normalize_domain("bücher.test") == "xn--bcher-kva.test"
    for bad in ("localhost", "1.2.3.4", "-bad.test", "a..test", "x" * 64 + ".test", "ä" * 70):
        with pytest.raises(ValueError):
            normalize_domain(bad)


def test_compile_drops_covered_children_and_reports_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "drugs.txt").write_text(
        "shop.test\nwww.shop.test\ndeep.a.shop.test\nother.test\nOTHER.test\nbad..name\n"
    )
    lines: list[str] = []
    report = compile_category(src, tmp_path, "drugs", progress=lines.append)
    assert (report.names, report.written, report.skipped) == (4, 2, 1)
    assert "drugs.txt:6" in report.problems[0]
    hl = HashList(tmp_path / "drugs.mmdl")
    assert name_hash(dw.encode_name("shop.test")) in hl
    assert name_hash(dw.encode_name("www.shop.test")) not in hl  # covered by its parent
    assert lines and "2 names" in lines[-1]
    with pytest.raises(ListSourceError, match=r"drugs\.txt:6"):
        compile_category(src, tmp_path, "drugs", strict=True)


def test_compile_all_rejects_unknown_categories_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "adult.txt").write_text("a.test\n")
    (src / "adlut.txt").write_text("typo.test\n")
    out = tmp_path / "out"
    with pytest.raises(ListSourceError, match="adlut"):
        compile_all(src, out)
    assert not out.exists()


def test_corrupt_list_files_are_refused_with_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "adult.mmdl"
    bad.write_bytes(b"not a list file at all, no no no")
    with pytest.raises(ListFileError, match=r"adult\.mmdl"):
        HashList(bad)
    good_src = tmp_path / "s"
    good_src.mkdir()
    (good_src / "adult.txt").write_text("a.test\n")
    compile_category(good_src, tmp_path, "adult")
    data = (tmp_path / "adult.mmdl").read_bytes()
    bad.write_bytes(data[:-4])
    with pytest.raises(ListFileError, match="size"):
        HashList(bad)


def test_matching_parents_case_idn_allow_over_deny(
    lists_dir: Path, mkprofile: Callable[..., Any]
) -> None:
    m = Matcher(mkprofile(), 1, ListStore(lists_dir))
    assert verdict(m, "porn.example") == (BLOCK, "adult")
    assert verdict(m, "cdn.video.porn.example") == (BLOCK, "adult")  # parent listed
    assert verdict(m, "xxx.example.org") == (BLOCK, "adult")
    assert verdict(m, "example.org") == (FORWARD, "")  # a child listed, not the parent
    assert verdict(m, "xn--bcher-kva.test") == (BLOCK, "adult")  # IDN from the list
    assert verdict(m, "www.casino.test") == (BLOCK, "gambling")
    assert verdict(m, "a.poker.test") == (BLOCK, "gambling")
    assert verdict(m, "chat.social.test") == (FORWARD, "")  # social not blocked here
    assert verdict(m, "ok.porn.example") == (FORWARD, "")  # guardian allow beats category
    assert verdict(m, "x.ok.porn.example") == (FORWARD, "")
    assert verdict(m, "homework-cheats.test") == (BLOCK, "guardian")
    assert verdict(m, "use-application-dns.net") == (BLOCK, "bypass")
    assert verdict(m, "mask-h2.icloud.com") == (BLOCK, "bypass")
    # Case: the parser lowercases; the matcher sees the same wire bytes.
    q = dw.parse_query(dw.build_query("WWW.Casino.TEST"))
    assert m.verdict(q.qname).action == BLOCK


def test_profile_domains_and_allowlist_only(lists_dir: Path, mkprofile: Callable[..., Any]) -> None:
    store = ListStore(lists_dir)
    m = Matcher(mkprofile(allow=("porn.example",), deny=("Games.Test",)), 2, store)
    assert verdict(m, "www.porn.example") == (FORWARD, "")
    assert verdict(m, "play.games.test") == (BLOCK, "guardian")
    only = Matcher(mkprofile(allowlist_only=True, allow=("school.test",)), 3, store)
    assert verdict(only, "www.school.test") == (FORWARD, "")
    assert verdict(only, "ok.porn.example") == (FORWARD, "")  # guardian allow list file
    assert verdict(only, "anything.test") == (BLOCK, "allowlist-only")
    assert verdict(only, "forcesafesearch.google.com") == (FORWARD, "")
    with pytest.raises(ValueError, match="allow_domains"):
        Matcher(mkprofile(allow=("not a domain",)), 4, store)


def test_recompiled_list_is_picked_up_by_the_next_snapshot(
    lists_dir: Path, mkprofile: Callable[..., Any], tmp_path: Path
) -> None:
    store = ListStore(lists_dir)
    old = Matcher(mkprofile(block=("social",)), 1, store)
    assert verdict(old, "new.test") == (FORWARD, "")
    src = tmp_path / "src2"
    src.mkdir()
    (src / "social.txt").write_text("new.test\n")
    compile_category(src, lists_dir, "social")
    new = Matcher(mkprofile(block=("social",)), 2, store)
    assert verdict(new, "new.test") == (BLOCK, "social")
    assert verdict(old, "chat.social.test") == (BLOCK, "social")  # old mapping still valid


def test_safesearch_rewrites(lists_dir: Path, mkprofile: Callable[..., Any]) -> None:
    from agent.core.policy import YouTubeMode

    store = ListStore(lists_dir)
    m = Matcher(mkprofile(safesearch=True, youtube=YouTubeMode.MODERATE), 1, store)
    for name in ("www.google.com", "google.de", "www.google.co.uk", "www.google.com.au",
                 "google.cat"):
        v = m.verdict(dw.encode_name(name))
        assert (v.action, v.target) == (REWRITE, dw.encode_name("forcesafesearch.google.com"))
    for name in ("mail.google.com", "google.example.com", "www.google.co.uk.evil.test"):
        assert m.verdict(dw.encode_name(name)).action == FORWARD, name
    assert m.verdict(dw.encode_name("www.bing.com")).target == dw.encode_name("strict.bing.com")
    assert m.verdict(dw.encode_name("duckduckgo.com")).target == dw.encode_name(
        "safe.duckduckgo.com")
    assert m.verdict(dw.encode_name("m.youtube.com")).target == dw.encode_name(
        "restrictmoderate.youtube.com")
    strict = Matcher(mkprofile(youtube=YouTubeMode.STRICT), 2, store)
    assert strict.verdict(dw.encode_name("www.youtube.com")).target == dw.encode_name(
        "restrict.youtube.com")
    assert strict.verdict(dw.encode_name("www.google.com")).action == FORWARD  # engines off
    off = Matcher(mkprofile(), 3, store)
    assert off.verdict(dw.encode_name("www.youtube.com")).action == FORWARD


def test_root_and_single_label_names(lists_dir: Path, mkprofile: Callable[..., Any]) -> None:
    store = ListStore(lists_dir)
    m = Matcher(mkprofile(), 1, store)
    assert m.verdict(b"\x00").action == FORWARD
    assert verdict(m, "example") == (FORWARD, "")
    only = Matcher(mkprofile(allowlist_only=True), 2, store)
    assert only.verdict(b"\x00").action == BLOCK
    assert verdict(only, "com") == (BLOCK, "allowlist-only")
