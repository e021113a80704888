"""Reconnect and retry delays: exponential back-off with full jitter (pure).

"Full jitter" (a uniform draw in [0, cap]) spreads thousands of devices that lost the
server at the same moment, so they do not all come back in the same second. The random
draw is passed in, so tests fix it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0  # seconds
    longest: float = 300.0
    factor: float = 2.0

    def cap(self, failures: int) -> float:
        """The longest wait after `failures` failures in a row (0 after none)."""
        if failures <= 0:
            return 0.0
        return min(self.longest, self.first * self.factor ** min(failures - 1, 64))

    def delay(self, failures: int, draw: float) -> float:
        """`draw` is uniform in [0, 1)."""
        if not 0.0 <= draw < 1.0:
            raise ValueError(f"draw {draw} is not in [0, 1)")
        cap = self.cap(failures)
        return max(self.first / 2, cap * draw) if failures > 0 else 0.0
