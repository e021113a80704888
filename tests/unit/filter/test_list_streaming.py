"""The streaming list compiler against the in-memory one it replaced, byte for byte.

`reference_bytes` is the previous compiler (a set of wire names, a set of their hashes,
a parent walk per name, `hashlist.encode`): an independent implementation of the same
rules. The streaming one must write exactly its bytes for generated lists full of the
cases the sort order must get right: children of listed names, siblings whose names
share a prefix with a hyphen or digit (`foo-bar.com` sorts between `foo.com` and
`www.foo.com` by plain text), duplicates, mixed formats, and runs small enough that
every list spans many of them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from agent.filter import lists
from agent.filter.hashlist import HashList, encode, name_hash
from agent.filter.lists import CompileReport, compile_all, compile_category, read_sources, source_files
from agent.filter.names import wire_name

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_"


def reference_bytes(src: Path, category: str) -> bytes:
    """The previous, in-memory compiler's output for one category."""
    report = CompileReport(category)
    domains: Iterable[str] = read_sources(source_files(src, category), report)
    wires = {wire_name(d) for d in domains}
    full = {name_hash(w) for w in wires}
    kept: list[int] = []
    for wire in wires:
        pos = wire[0] + 1
        covered = False
        while wire[pos]:
            if name_hash(wire[pos:]) in full:
                covered = True
                break
            pos += wire[pos] + 1
        if not covered:
            kept.append(name_hash(wire))
    return encode(kept)


def label(rng: random.Random) -> str:
    n = rng.choice((1, 2, 3, 3, 5, 8, 12))
    body = "".join(rng.choice(ALPHABET) for _ in range(n))
    return body.strip("-") or "x"


def generated(rng: random.Random, count: int) -> list[str]:
    """Names with many parent/child and shared-prefix relations."""
    names: list[str] = []
    tlds = ("com", "net", "co.uk", "xn--p1ai", "de")
    for _ in range(count):
        roll = rng.random()
        if names and roll < 0.3:  # a child of a listed name
            names.append(f"{label(rng)}.{rng.choice(names)}")
        elif names and roll < 0.45:  # a sibling sharing a prefix: foo-bar.com beside foo.com
            parent = rng.choice(names)
            first, _, rest = parent.partition(".")
            names.append(f"{first}{rng.choice('-_0a')}{label(rng)}.{rest}")
        elif names and roll < 0.55:  # a duplicate, in another case
            names.append(rng.choice(names).upper())
        else:
            names.append(f"{label(rng)}.{rng.choice(tlds)}")
    return names


def write_sources(src: Path, category: str, names: list[str], rng: random.Random) -> None:
    folder = src / category
    folder.mkdir(parents=True)
    parts: list[list[str]] = [[], [], []]
    for name in names:
        parts[rng.randrange(3)].append(name)
    hosts, plain, adblock = parts
    (folder / "a.hosts").write_text("".join(f"0.0.0.0 {n}\n" for n in hosts) + "127.0.0.1 localhost\n")
    (folder / "b.txt").write_text("# plain\n" + "".join(f"{n}\n" for n in plain) + "bad..name\n")
    (folder / "c.adblock").write_text("! adblock\n" + "".join(f"||{n}^\n" for n in adblock))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaming_compiler_writes_the_reference_bytes(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(lists, "RUN_NAMES", 997)  # many runs for a few thousand names
    monkeypatch.setattr(lists, "RUN_HASHES", 601)
    src, out = tmp_path / "src", tmp_path / "out"
    write_sources(src, "adult", generated(rng, 6000), rng)
    write_sources(src, "games", generated(rng, 40), rng)  # fits one run: no run file
    progress: list[str] = []
    reports = {r.category: r for r in compile_all(src, out, progress.append)}
    for category in ("adult", "games", "social"):  # social: no source, an empty list
        assert (out / f"{category}.mmdl").read_bytes() == reference_bytes(src, category), category
    assert reports["adult"].names > reports["adult"].written > 1000
    assert any("adult: merging" in line and "name runs" in line for line in progress)
    assert any("adult: hash run" in line for line in progress)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c}.mmdl" for c in lists.ALL_LISTS), \
        "runs, bodies and staged files are all gone"


def test_a_name_below_a_listed_one_is_dropped_and_a_prefix_sibling_is_not(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "drugs.txt").write_text("foo.com\nfoo-bar.com\nwww.foo.com\nfoo0.com\na.b.foo.com\n")
    report = compile_category(src, tmp_path, "drugs")
    assert (report.names, report.written) == (5, 3)
    listed = HashList(tmp_path / "drugs.mmdl")
    try:
        for kept in ("foo.com", "foo-bar.com", "foo0.com"):
            assert name_hash(wire_name(kept)) in listed
        assert name_hash(wire_name("www.foo.com")) not in listed
    finally:
        listed.close()


def test_a_failed_category_leaves_no_runs_nor_staged_files(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lists, "RUN_NAMES", 10)
    src, out = tmp_path / "src", tmp_path / "out"
    out.mkdir()
    (out / "adult.mmdl").write_bytes(encode([1, 2, 3]))
    src.mkdir()
    (src / "adult.txt").write_text("".join(f"{n}\n" for n in generated(random.Random(5), 200)))
    (src / "video.txt").write_text("ok.com\nbad..line\n")
    before = (out / "adult.mmdl").read_bytes()
    with pytest.raises(lists.ListSourceError, match="video"):
        compile_all(src, out, strict=True)
    assert [p.name for p in out.iterdir()] == ["adult.mmdl"]
    assert (out / "adult.mmdl").read_bytes() == before
