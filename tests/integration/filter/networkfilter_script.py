"""Drives NetworkFilter inside the test namespace; prints what the table held at each step."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.core.policy import FilterProfile, YouTubeMode
from agent.filter.server import FilterSettings
from agent.filter.service import NetworkFilter


def profile(allowlist_only: bool) -> FilterProfile:
    return FilterProfile(frozenset({"adult"}), allowlist_only, frozenset(), False,
                         YouTubeMode.OFF, frozenset({"school.test"}), frozenset())


def table() -> str:
    return subprocess.run(["nft", "list", "table", "inet", "minormode"], capture_output=True,
                          text=True, check=False).stdout


def main() -> int:
    settings = FilterSettings(listen=(("127.0.0.1", 5301),), upstreams=(("10.53.0.1", 53),),
                              lists_dir=Path(sys.argv[1]))
    net = NetworkFilter(settings, (65534,), clock=lambda: datetime.now(UTC))
    steps: dict[str, bool | int] = {}
    net.start(profile(False), 1)
    steps["start"] = "@allow4" in table()
    net.update(profile(True), 2)
    steps["allowlist"] = "@allow4" in table()
    steps["version"] = net.dns.version if net.dns else -1
    net.update(profile(False), 3)
    steps["relaxed"] = "@allow4" in table()
    net.stop()
    steps["stopped"] = "minormode" in table()
    print(json.dumps(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
