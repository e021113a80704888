"""How often the child may make the agent write: token buckets that count what they refuse.

Every write a child can trigger (a blocked lookup, a blocked exec, a report, a request for
time, a purchase request) passes a `FloodGate` first. Up to `burst` pass at once, then
`per_hour` an hour, per key and (`total_burst`, `total_per_hour`) for all keys together;
what is refused is counted per key and handed out by `drain`, so a flood becomes one
aggregated count, never one row per attempt. The key table is bounded too (`max_keys`):
keys beyond it share one overflow bucket, so random names cannot grow it, and the total
bounds what many keys together may write.

Pure: the caller passes the time (monotonic seconds); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

OVERFLOW = "*"  # the shared key once the table is full


@dataclass
class _Bucket:
    tokens: float
    at: float


class FloodGate:
    def __init__(self, burst: int, per_hour: float, *, total_burst: int | None = None,
                 total_per_hour: float | None = None, max_keys: int = 1024) -> None:
        total_burst = total_burst if total_burst is not None else burst * 10
        total_per_hour = total_per_hour if total_per_hour is not None else per_hour * 10
        if min(burst, total_burst, max_keys) < 1 or min(per_hour, total_per_hour) <= 0:
            raise ValueError("a flood gate needs bursts and max_keys >= 1 and rates > 0")
        self.burst, self.rate, self.max_keys = burst, per_hour / 3600.0, max_keys
        self.total_burst, self.total_rate = total_burst, total_per_hour / 3600.0
        self._buckets: dict[Hashable, _Bucket] = {}
        self._total = _Bucket(float(total_burst), float("-inf"))
        self._refused: dict[Hashable, int] = {}

    def _bucket(self, key: Hashable, now: float) -> tuple[Hashable, _Bucket]:
        bucket = self._buckets.get(key)
        if bucket is not None:
            return key, bucket
        if len(self._buckets) >= self.max_keys:
            self._forget_full(now)
        if len(self._buckets) >= self.max_keys:
            key = OVERFLOW
            bucket = self._buckets.get(key)
            if bucket is not None:
                return key, bucket
        bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        return key, bucket

    def _forget_full(self, now: float) -> None:
        """Buckets refilled to `burst` carry no state: drop them to make room."""
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.at) * self.rate >= self.burst]:
            del self._buckets[key]

    def admit(self, key: Hashable, now: float, weight: int = 1) -> bool:
        """Whether one more write for `key` may happen now; a refusal is counted as the
        `weight` attempts the refused write stood for."""
        key, bucket = self._bucket(key, now)
        _refill(bucket, now, self.burst, self.rate)
        total = self._total
        if total.at == float("-inf"):
            total.at = now
        _refill(total, now, self.total_burst, self.total_rate)
        if bucket.tokens >= 1.0 and total.tokens >= 1.0:
            bucket.tokens -= 1.0
            total.tokens -= 1.0
            return True
        self._refused[key] = self._refused.get(key, 0) + weight
        return False

    def drain(self) -> dict[Hashable, int]:
        """The refusals counted since the last drain, per key (the aggregate to record)."""
        refused, self._refused = self._refused, {}
        return refused


@dataclass(frozen=True)
class Limit:
    burst: int  # per key
    per_hour: float
    total_burst: int  # all keys of the kind together
    total_per_hour: float


# Per event kind (agent.store.events.EventKind values): what a child may cause at will.
CHILD_LIMITS: Mapping[str, Limit] = {
    "dns_blocked": Limit(60, 600, 200, 2000),  # keyed by site: random subdomains are one
    "app_blocked": Limit(20, 120, 100, 600),  # keyed by app: every unknown program is one
    "report": Limit(5, 10, 10, 30),  # the D-Bus methods refuse with LimitsExceeded
    "time_requested": Limit(5, 10, 5, 10),
    "purchase": Limit(10, 30, 20, 60),  # keyed by the paying app
}

# (event kind, key) -> may one more be written now; refusals are counted.
Admit = Callable[[str, str], bool]


class FloodGates:
    """One `FloodGate` per kind; unknown kinds always pass."""

    def __init__(self, limits: Mapping[str, Limit] = CHILD_LIMITS) -> None:
        self.gates = {kind: FloodGate(lim.burst, lim.per_hour, total_burst=lim.total_burst,
                                      total_per_hour=lim.total_per_hour)
                      for kind, lim in limits.items()}

    def admit(self, kind: str, key: str, now: float, weight: int = 1) -> bool:
        gate = self.gates.get(kind)
        return True if gate is None else gate.admit(key, now, weight)

    def drain(self) -> dict[str, dict[Hashable, int]]:
        return {kind: refused for kind, gate in self.gates.items() if (refused := gate.drain())}


def own_gates(monotonic: Callable[[], float]) -> Admit:
    """An `Admit` over gates of its own, for a writer built without the daemon's sink
    (tests, tools): it paces the same, only its refusals are not recorded anywhere.
    `monotonic` is the caller's clock (seconds)."""
    gates = FloodGates()
    return lambda kind, key: gates.admit(kind, key, monotonic())


def _refill(bucket: _Bucket, now: float, burst: int, rate: float) -> None:
    bucket.tokens = min(float(burst), bucket.tokens + max(0.0, now - bucket.at) * rate)
    bucket.at = max(bucket.at, now)
