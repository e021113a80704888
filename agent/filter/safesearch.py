"""SafeSearch: which names are answered with the search engine's enforced host.

Google, Bing and DuckDuckGo honour a DNS-level switch: resolve their search host to a
"forcesafesearch" host and the engine filters results, whatever the browser says. YouTube
has two levels (restrict = strict, restrictmoderate = moderate), a setting of its own.
Some names only exist to switch protection off (Firefox's DoH canary, iCloud Private
Relay); they are answered NXDOMAIN always.
"""

from __future__ import annotations

from agent.core.policy import YouTubeMode
from agent.filter.dnswire import encode_name

GOOGLE_TARGET = "forcesafesearch.google.com"
BING_TARGET = "strict.bing.com"
DUCKDUCKGO_TARGET = "safe.duckduckgo.com"
YOUTUBE_TARGETS = {
    YouTubeMode.STRICT: "restrict.youtube.com",
    YouTubeMode.MODERATE: "restrictmoderate.youtube.com",
}

YOUTUBE_NAMES = (
    "www.youtube.com",
    "m.youtube.com",
    "youtube.com",
    "youtubei.googleapis.com",
    "youtube.googleapis.com",
    "www.youtube-nocookie.com",
)
BING_NAMES = ("www.bing.com", "bing.com")
DUCKDUCKGO_NAMES = (
    "duckduckgo.com",
    "www.duckduckgo.com",
    "start.duckduckgo.com",
    "html.duckduckgo.com",
    "lite.duckduckgo.com",
)

# Names whose only use is to switch protection off: NXDOMAIN whatever the profile says.
CANARY_NAMES = frozenset(
    encode_name(n) for n in ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com")
)

# Every hosts a rewrite may point at: they resolve even in allowlist-only mode.
TARGET_NAMES = frozenset(
    encode_name(n)
    for n in (GOOGLE_TARGET, BING_TARGET, DUCKDUCKGO_TARGET, *YOUTUBE_TARGETS.values())
)


def is_google_search(wire: bytes) -> bool:
    """www.google.<tld> or google.<tld> for every Google country domain.

    Google's country domains are google.com, google.cat, google.<cc>, google.co.<cc> and
    google.com.<cc>; matching that shape (rather than a copied list that goes stale)
    covers them all.
    """
    labels: list[bytes] = []
    pos = 0
    while wire[pos]:
        n = wire[pos]
        labels.append(wire[pos + 1 : pos + 1 + n])
        pos += n + 1
    if labels and labels[0] == b"www":
        labels = labels[1:]
    if not labels or labels[0] != b"google":
        return False
    suffix = labels[1:]
    if len(suffix) == 1:
        return suffix[0] in (b"com", b"cat") or (len(suffix[0]) == 2 and suffix[0].isalpha())
    if len(suffix) == 2:
        return suffix[0] in (b"co", b"com") and len(suffix[1]) == 2 and suffix[1].isalpha()
    return False


class SafeSearch:
    """The rewrite table for one profile: name (wire) -> enforced host (wire)."""

    __slots__ = ("_exact", "_google")

    def __init__(self, engines: bool, youtube: YouTubeMode) -> None:
        exact: dict[bytes, bytes] = {}
        if engines:
            for name in BING_NAMES:
                exact[encode_name(name)] = encode_name(BING_TARGET)
            for name in DUCKDUCKGO_NAMES:
                exact[encode_name(name)] = encode_name(DUCKDUCKGO_TARGET)
        target = YOUTUBE_TARGETS.get(youtube)
        if target is not None:
            for name in YOUTUBE_NAMES:
                exact[encode_name(name)] = encode_name(target)
        self._exact = exact
        self._google = encode_name(GOOGLE_TARGET) if engines else None

    def target(self, wire: bytes) -> bytes | None:
        """The enforced host for this name, or None if it is not rewritten."""
        hit = self._exact.get(wire)
        if hit is not None:
            return hit
        if self._google is not None and b"\x06google" in wire and is_google_search(wire):
            return self._google
        return None
