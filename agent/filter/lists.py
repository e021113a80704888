"""The list compiler: category source lists -> one compact `.mmdl` file per category.

Runs offline (CLI or a background job), never on the query path. Sources may be hosts
files, plain domain lists or adblock `||domain^` lines, in any mix. Names are lowercased,
IDNA-encoded and de-duplicated; a name whose parent is also listed is dropped (the filter
checks parents anyway). Each output is written atomically, so a running filter keeps its
old mapping until it reloads.

Source layout: `SRC/<category>.txt` and/or `SRC/<category>/*` (every file in it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.filter.hashlist import SUFFIX, encode, name_hash, write_atomic
from agent.filter.match import GUARDIAN_ALLOW, GUARDIAN_BLOCK
from agent.filter.names import looks_like_ip, normalize_domain, wire_name

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


def minimal_hashes(domains: Iterable[str]) -> tuple[list[int], int]:
    """Hashes of the names not covered by a listed parent, and how many unique names came in."""
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
    return kept, len(wires)


def build_category(
    src: Path, category: str, progress: Progress | None = None, strict: bool = False
) -> tuple[CompileReport, bytes]:
    """Read and compile one category in memory (an empty source yields an empty list)."""
    if category not in ALL_LISTS:
        raise ListSourceError(f"unknown category {category!r}; known: {', '.join(ALL_LISTS)}")
    report = CompileReport(category)
    files = source_files(src, category)
    hashes, report.names = minimal_hashes(read_sources(files, report, progress))
    if strict and report.skipped:
        raise ListSourceError(
            f"{category}: {report.skipped} invalid lines, first: {report.problems[0]}"
        )
    report.written = len(hashes)
    if progress is not None:
        progress(
            f"{category}: {report.written:,} names compiled "
            f"({report.names:,} unique, {report.skipped:,} invalid lines skipped)"
        )
    return report, encode(hashes)


def compile_category(
    src: Path, out: Path, category: str, progress: Progress | None = None, strict: bool = False
) -> CompileReport:
    """Compile one category and replace its list file atomically."""
    report, data = build_category(src, category, progress, strict)
    report.output = out / f"{category}{SUFFIX}"
    write_atomic(report.output, data)
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
        if entry.name.startswith(".") or entry.name.lower() == "readme.md":
            continue
        stem = entry.name[:-4] if entry.is_file() and entry.name.endswith(".txt") else entry.name
        if stem not in known:
            raise ListSourceError(
                f"{entry}: unknown category {stem!r}; known: {', '.join(ALL_LISTS)}"
            )
    built = [build_category(src, c, progress, strict) for c in ALL_LISTS]
    out.mkdir(parents=True, exist_ok=True)
    for report, data in built:
        report.output = out / f"{report.category}{SUFFIX}"
        write_atomic(report.output, data)
    return [report for report, _ in built]
