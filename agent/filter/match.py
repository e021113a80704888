"""What the filter does with a name, for one filter profile: an immutable snapshot.

The server swaps a whole `Matcher` when the profile or the lists change, so a query is
always judged by one consistent profile. List files are memory-mapped once and shared by
every snapshot that uses them (`ListStore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.core.policy import FilterProfile, YouTubeMode
from agent.filter.dnswire import encode_name
from agent.filter.hashlist import SUFFIX, HashList, name_hash
from agent.filter.names import normalize_domain
from agent.filter.safesearch import CANARY_NAMES, TARGET_NAMES, SafeSearch

FORWARD = 0
BLOCK = 1
REWRITE = 2

GUARDIAN_BLOCK = "guardian-block"  # list names, as in agent.filter.lists
GUARDIAN_ALLOW = "guardian-allow"
REASON_ALLOWLIST_ONLY = "allowlist-only"
REASON_GUARDIAN = "guardian"
REASON_BYPASS = "bypass"


@dataclass(frozen=True, slots=True)
class Verdict:
    """FORWARD; BLOCK with the reason (category name, "guardian", ...); or REWRITE to a host."""

    action: int
    reason: str = ""
    target: bytes = b""


HashSource = frozenset[int] | HashList  # a profile's own names, or a compiled list

VERDICT_FORWARD = Verdict(FORWARD)
VERDICT_BYPASS = Verdict(BLOCK, REASON_BYPASS)
VERDICT_ALLOWLIST_ONLY = Verdict(BLOCK, REASON_ALLOWLIST_ONLY)
VERDICT_GUARDIAN = Verdict(BLOCK, REASON_GUARDIAN)


def missing_lists_text(categories: tuple[str, ...]) -> str:
    """How `status`, `explain` and the log name blocked categories without a list."""
    return "; ".join(f"{c}: no list installed" for c in categories)


class ListStore:
    """Opens compiled list files on demand and keeps them mapped while unchanged on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._open: dict[str, HashList] = {}

    def get(self, name: str) -> HashList | None:
        """The mapped list `name`, reopened if its file was replaced; None if absent."""
        path = self.directory / f"{name}{SUFFIX}"
        current = self._open.get(name)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if current is not None and current.stat_key == (st.st_ino, st.st_mtime_ns, st.st_size):
            return current
        fresh = HashList(path)
        self._open[name] = fresh  # the old mapping stays valid for snapshots holding it
        return fresh


def _hash_set(domains: frozenset[str], where: str) -> frozenset[int]:
    out = set()
    for d in domains:
        try:
            out.add(name_hash(encode_name(normalize_domain(d))))
        except ValueError as exc:
            raise ValueError(f"{where}: {d!r}: {exc}") from None
    return frozenset(out)


class Matcher:
    """Judges names for one profile. Thread-safe: nothing mutates after __init__."""

    __slots__ = (
        "_allow_lists",
        "_allow_set",
        "_block_lists",
        "_block_set",
        "allowlist_only",
        "missing",
        "profile",
        "safesearch",
        "version",
    )

    def __init__(self, profile: FilterProfile, version: int, store: ListStore) -> None:
        self.profile = profile
        self.version = version
        self.allowlist_only = profile.allowlist_only
        self._allow_set = _hash_set(profile.allow_domains, "filter.allow_domains")
        self._block_set = _hash_set(profile.block_domains, "filter.block_domains")
        allow = store.get(GUARDIAN_ALLOW)
        self._allow_lists = (allow,) if allow is not None and len(allow) else ()
        blocks: list[tuple[Verdict, HashList]] = []
        guardian = store.get(GUARDIAN_BLOCK)
        if guardian is not None and len(guardian):
            blocks.append((VERDICT_GUARDIAN, guardian))
        missing = []
        for category in sorted(profile.block_categories):
            hl = store.get(category)
            if hl is not None and len(hl):
                blocks.append((Verdict(BLOCK, category), hl))
            else:
                missing.append(category)
        self._block_lists = tuple(blocks)
        # Blocked categories with no (or an empty) compiled list: they block nothing, and
        # the agent says so loudly (log, status, explain, an event for the guardian).
        self.missing: tuple[str, ...] = tuple(missing)
        self.safesearch = SafeSearch(
            profile.safesearch, profile.youtube if profile.youtube else YouTubeMode.OFF
        )

    def fast_parts(self) -> tuple[frozenset[int], list[HashSource], list[tuple[str, HashSource]]] | None:
        """What the native fast path needs to answer listed names exactly as `verdict`
        does: the names it must leave to Python (canaries), the allow sets, the block sets
        with their reasons in this order. None in allowlist-only mode (Python's alone)."""
        if self.allowlist_only:
            return None
        canaries = frozenset(name_hash(w) for w in CANARY_NAMES)
        allow: list[HashSource] = [self._allow_set, *self._allow_lists]
        block: list[tuple[str, HashSource]] = [(REASON_GUARDIAN, self._block_set)]
        block += [(v.reason, hl) for v, hl in self._block_lists]
        return canaries, allow, block

    def verdict(self, wire: bytes) -> Verdict:
        """The verdict for a lowercase wire name: allow lists first, then blocks."""
        return self._judge(wire, self.allowlist_only)

    def chain_verdict(self, wire: bytes) -> Verdict:
        """The verdict for a name an allowed answer's CNAME chain goes through: the same
        allow lists and blocks, but allowlist-only mode's "everything else" does not
        apply (an allowed site's CDN is not on the guardian's list; a chain reaching a
        listed category, a guardian's block or a canary is still blocked)."""
        return self._judge(wire, False)

    def _judge(self, wire: bytes, allowlist_only: bool) -> Verdict:
        if wire in CANARY_NAMES:
            return VERDICT_BYPASS
        # The name and each parent except the top-level label: lists never hold a bare
        # TLD (the compiler and `normalize_domain` require two labels).
        hashes = []
        pos = 0
        nxt = wire[0] + 1
        while wire[0] and wire[nxt]:
            hashes.append(name_hash(wire[pos:]))
            pos = nxt
            nxt += wire[nxt] + 1
        allowed = False
        allow_set = self._allow_set
        for h in hashes:
            if h in allow_set:
                allowed = True
                break
        if not allowed:
            for hl in self._allow_lists:
                for h in hashes:
                    if h in hl:
                        allowed = True
                        break
        if not allowed:
            if allowlist_only:
                if wire not in TARGET_NAMES:
                    return VERDICT_ALLOWLIST_ONLY
            else:
                block_set = self._block_set
                for h in hashes:
                    if h in block_set:
                        return VERDICT_GUARDIAN
                for blocked, hl in self._block_lists:
                    for h in hashes:
                        if h in hl:
                            return blocked
        target = self.safesearch.target(wire)
        if target is not None:
            return Verdict(REWRITE, target=target)
        return VERDICT_FORWARD
