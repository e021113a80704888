"""The list compiler: category source lists -> one compact `.mmdl` file per category.

Runs offline (CLI or a background job), never on the query path. Sources may be hosts
files, plain domain lists or adblock `||domain^` lines, in any mix. Names are lowercased,
IDNA-encoded and de-duplicated; a name whose parent is also listed is dropped (the filter
checks parents anyway). Each output is written atomically, so a running filter keeps its
old mapping until it reloads.

Memory stays bounded whatever the size of a list (3M names in under 64 MiB): names are
sorted top label first in runs on disk, merged (each name once, a listed name directly
before the names below it, so covered children drop out in one pass), and their hashes
sorted and merged the same way into the file (`agent.filter.spill`); the runs and the
staged files live in the output directory and are removed as they are used.

Source layout: `SRC/<category>.txt` and/or `SRC/<category>/*` (every file in it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.filter.hashlist import SUFFIX, AtomicFile, name_hash, write_sorted
from agent.filter.match import GUARDIAN_ALLOW, GUARDIAN_BLOCK
from agent.filter.names import looks_like_ip, normalize_domain, wire_name
from agent.filter.spill import TEXT, U64, Spill

CATEGORIES: tuple[str, ...] = (
    "adult",
    "gambling",
    "violence",
    "drugs",
    "self-harm",
    "proxies-vpn-doh",
    "games",
    "social",
    "video",
)
ALL_LISTS: tuple[str, ...] = (*CATEGORIES, GUARDIAN_BLOCK, GUARDIAN_ALLOW)

_HOSTS_IGNORED = frozenset(
    {"localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost",
     "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters",
     "ip6-allhosts", "0.0.0.0"}
)
MAX_REPORTED = 20

Progress = Callable[[str], None]


class ListSourceError(ValueError):
    """A source cannot be compiled; the message names the file (and line)."""


def domains_in_line(line: str) -> list[str]:
    """The raw domain tokens of one source line (hosts, plain or adblock); [] if none."""
    text = line.strip()
    if not text or text[0] in "#!":
        return []
    if text.startswith("||"):
        body = text[2:]
        cut = body.find("^")
        if cut < 0:
            raise ValueError("adblock rule without '^' terminator")
        rest = body[cut + 1 :]
        if (rest and not rest.startswith("$")) or "/" in body[:cut]:
            raise ValueError("adblock rule with a path or pattern is not a domain rule")
        return [body[:cut]]
    if text.startswith("@@") or text[0] in "/|" or "*" in text.replace("*.", "", 1):
        raise ValueError("unsupported adblock syntax (exceptions, patterns or paths)")
    hash_at = text.find("#")
    if hash_at >= 0:
        text = text[:hash_at]
    tokens = text.split()
    if not tokens:
        return []
    if not looks_like_ip(tokens[0]):
        if len(tokens) != 1:
            raise ValueError("more than one word on a plain domain line")
        return tokens
    return [t for t in tokens[1:] if t.lower() not in _HOSTS_IGNORED]


@dataclass
class CompileReport:
    """What one category's compile did; `problems` are 'file:line: message' strings."""

    category: str
    files: int = 0
    lines: int = 0
    names: int = 0  # unique valid names read
    written: int = 0  # after dropping names covered by a listed parent
    skipped: int = 0  # invalid lines
    problems: list[str] = field(default_factory=list)
    output: Path | None = None


def source_files(src: Path, category: str) -> list[Path]:
    files: list[Path] = []
    single = src / f"{category}.txt"
    if single.is_file():
        files.append(single)
    folder = src / category
    if folder.is_dir():
        files.extend(sorted(p for p in folder.iterdir() if p.is_file()))
    return files


def read_sources(
    files: Iterable[Path], report: CompileReport, progress: Progress | None = None
) -> Iterator[str]:
    """Valid normalised domains from the files; invalid lines are counted and reported."""
    for path in files:
        report.files += 1
        try:
            fh = open(path, encoding="utf-8", errors="strict")  # noqa: SIM115
        except OSError as exc:
            raise ListSourceError(f"{path}: cannot read: {exc.strerror}") from None
        with fh:
            try:
                for lineno, line in enumerate(fh, 1):
                    report.lines += 1
                    if progress is not None and report.lines % 250_000 == 0:
                        progress(f"{report.category}: {report.lines:,} lines read")
                    try:
                        for token in domains_in_line(line):
                            yield normalize_domain(token)
                    except ValueError as exc:
                        report.skipped += 1
                        if len(report.problems) < MAX_REPORTED:
                            report.problems.append(f"{path}:{lineno}: {exc}: {line.strip()!r}")
            except UnicodeDecodeError as exc:
                raise ListSourceError(f"{path}: not UTF-8 text ({exc.reason})") from None


RUN_NAMES = 50_000  # names a sorted run holds (~4 MiB of Python strings)
RUN_HASHES = 131_072  # hashes a sorted run holds (~5 MiB)
_SEP = ","  # sorts below every label character (a-z 0-9 _ -), so a name's children follow it


def _tree_key(domain: str) -> str:
    """The name's labels from the top down ("www.example.com" -> "com,example,www"): in
    this order a listed name is followed directly by every listed name below it."""
    return _SEP.join(reversed(domain.split(".")))


def _wire_of_key(key: str) -> bytes:
    return wire_name(".".join(reversed(key.split(_SEP))))


def minimal_hashes(keys: Iterable[str], report: CompileReport) -> Iterator[int]:
    """Hashes of the names not covered by a listed parent, from unique tree keys in
    order (`report.names` counts them). The names below a kept name come right after it,
    so one comparison with the last kept name tells whether a name is covered."""
    kept_prefix = None  # the last kept key and the separator: its children start so
    for key in keys:
        report.names += 1
        if kept_prefix is not None and key.startswith(kept_prefix):
            continue
        kept_prefix = key + _SEP
        yield name_hash(_wire_of_key(key))


def stage_category(
    src: Path, out: Path, category: str, progress: Progress | None = None, strict: bool = False
) -> tuple[CompileReport, AtomicFile]:
    """Compile one category into a hidden file in `out` (an empty source yields an empty
    list), not yet in place: the caller commits or discards it. Memory stays bounded
    whatever the list's size: names and then hashes are sorted in runs on disk in `out`
    (`agent.filter.spill`) and merged."""
    if category not in ALL_LISTS:
        raise ListSourceError(f"unknown category {category!r}; known: {', '.join(ALL_LISTS)}")
    report = CompileReport(category)
    files = source_files(src, category)

    def ran(what: str) -> Callable[[int, int], None]:
        def told(runs: int, items: int) -> None:
            if progress is not None:
                progress(f"{category}: {what} run {runs} sorted ({items:,} so far)")
        return told

    with Spill(out, TEXT, RUN_NAMES, ran("name")) as names, \
            Spill(out, U64, RUN_HASHES, ran("hash")) as hashes:
        for domain in read_sources(files, report, progress):
            names.add(_tree_key(domain))
        if strict and report.skipped:
            raise ListSourceError(
                f"{category}: {report.skipped} invalid lines, first: {report.problems[0]}"
            )
        if progress is not None and names.runs:
            progress(f"{category}: merging {names.runs} name runs")
        for h in minimal_hashes(names.merged(), report):
            hashes.add(h)
        names.close()
        if progress is not None and hashes.runs:
            progress(f"{category}: merging {hashes.runs} hash runs")
        staged = AtomicFile(out / f"{category}{SUFFIX}")
        try:
            report.written = write_sorted(staged.fh, hashes.merged(), out)
        except BaseException:
            staged.discard()
            raise
    report.output = staged.path
    if progress is not None:
        progress(
            f"{category}: {report.written:,} names compiled "
            f"({report.names:,} unique, {report.skipped:,} invalid lines skipped)"
        )
    return report, staged


def compile_category(
    src: Path, out: Path, category: str, progress: Progress | None = None, strict: bool = False
) -> CompileReport:
    """Compile one category and replace its list file atomically."""
    report, staged = stage_category(src, out, category, progress, strict)
    staged.commit()
    return report


def compile_all(
    src: Path, out: Path, progress: Progress | None = None, strict: bool = False
) -> list[CompileReport]:
    """Compile every known category; nothing is written unless all of them compile.

    Unknown names in the source directory are an error (a typo would silently leave a
    category empty otherwise).
    """
    if not src.is_dir():
        raise ListSourceError(f"{src}: list source directory does not exist")
    known = set(ALL_LISTS)
    for entry in sorted(src.iterdir()):
        if entry.name.startswith(".") or entry.name.lower().endswith(".md"):
            continue  # README.md, SOURCES.md: documentation beside the sources
        stem = entry.name[:-4] if entry.is_file() and entry.name.endswith(".txt") else entry.name
        if stem not in known:
            raise ListSourceError(
                f"{entry}: unknown category {stem!r}; known: {', '.join(ALL_LISTS)}"
            )
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)  # the runs and staged files are written there
    staged: list[tuple[CompileReport, AtomicFile]] = []
    try:
        for category in ALL_LISTS:
            staged.append(stage_category(src, out, category, progress, strict))
    except BaseException:
        for _, pending in staged:
            pending.discard()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # nothing written: not even the directory
        raise
    for _, pending in staged:
        pending.commit()
    return [report for report, _ in staged]
