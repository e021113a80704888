"""The agent's core hot paths, timed the same way in the guest and on the host.

Prints "@@MM bench.NAME=VALUE" lines (median of several repeats, in the unit named).
Bounded: well under a minute in the emulated guest.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def median_of(repeats: int, fn: object) -> float:
    assert callable(fn)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    from agent.core.decide import decide
    from agent.core.parse import default_policy, load_policy_file
    from agent.core.policy import AgeBand
    from agent.core.usage import Usage

    out = lambda name, value: print(f"@@MM bench.{name}={value:.4g}", flush=True)  # noqa: E731

    start = median_of(5, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    out("python_start_ms", start * 1000)
    imp = median_of(3, lambda: subprocess.run([sys.executable, "-c", "import agent.daemon"], check=True))
    out("agent_import_ms", imp * 1000)

    policy_file = Path("/etc/minormode/policy.toml")
    if not policy_file.exists():
        policy_file = Path(__file__).resolve().parents[3] / "config/policies/8-12.toml"
    parse = median_of(5, lambda: load_policy_file(policy_file))
    out("policy_parse_ms", parse * 1000)

    policy = default_policy(AgeBand.AGE_8_12)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    n = 200

    def decisions() -> None:
        for i in range(n):
            decide(policy, at + timedelta(minutes=7 * i), Usage())

    per = median_of(3, decisions) / n
    out("decide_us", per * 1e6)


if __name__ == "__main__":
    main()
