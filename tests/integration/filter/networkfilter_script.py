"""Drives NetworkFilter inside the test namespace, with the child's probes beside it; prints
what the child reached and what the table held at each step (JSON).

The steps: normal mode (learned addresses, an IP literal refused, a UDP flow opened), a
policy's fixed network added (the flow and the learned sets stay), allowlist-only (a new
table: the old flow and the learned addresses are dropped, the fixed network stays), back
to normal (the table stays), stop (the table goes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.core.policy import FilterProfile, YouTubeMode
from agent.filter.server import FilterSettings
from agent.filter.service import NetworkFilter

sys.path.insert(0, str(Path(__file__).parents[2]))  # tests/: the support package
from support.netns import PROBE, Flow

CHILD = "65534"


def profile(allowlist_only: bool, egress: frozenset[str] = frozenset()) -> FilterProfile:
    return FilterProfile(
        block_categories=frozenset({"adult"}), allowlist_only=allowlist_only,
        allowlist_only_during=frozenset(), safesearch=False, youtube=YouTubeMode.OFF,
        allow_domains=frozenset({"school.test"}), block_domains=frozenset(), egress_allow=egress)


def table() -> str:
    return subprocess.run(["nft", "list", "table", "inet", "minormode"], capture_output=True,
                          text=True, check=False).stdout


def learned() -> str:
    return subprocess.run(["nft", "list", "set", "inet", "minormode", "allow4"],
                          capture_output=True, text=True, check=False).stdout


def child(*checks: list[object]) -> list[str]:
    out = subprocess.run([sys.executable, str(PROBE), CHILD, json.dumps(list(checks))],
                         capture_output=True, text=True, check=True, timeout=60)
    result: list[str] = json.loads(out.stdout)
    return result


RESOLVE = ["dns", "10.53.0.1", 53, "www.school.test"]  # redirected to the filter
LITERAL = ["tcp", "10.77.0.1", 443]


def main() -> int:
    settings = FilterSettings(listen=(("127.0.0.1", 5301),), upstreams=(("10.53.0.1", 53),),
                              lists_dir=Path(sys.argv[1]))
    net = NetworkFilter(settings, (int(CHILD),), clock=lambda: datetime.now(UTC))
    steps: dict[str, object] = {}
    net.start(profile(False), 1)
    steps["normal"] = child(RESOLVE, LITERAL)
    steps["normal_learned"] = "10.77.0.2" in learned()
    flow = Flow(int(CHILD), "10.77.0.2", 40000)
    steps["flow_opened"] = flow.first
    net.update(profile(False, frozenset({"10.77.0.1/32"})), 2)
    steps["fixed"] = child(LITERAL)
    steps["fixed_flow"] = flow.again()
    steps["fixed_learned"] = "10.77.0.2" in learned()
    net.update(profile(True, frozenset({"10.77.0.1/32"})), 3)
    steps["allowlist_learned"] = "10.77.0.2" in learned()
    steps["allowlist_old_flow"] = flow.again()
    flow.close()
    steps["allowlist"] = child(LITERAL, ["dns", "10.53.0.1", 53, "other.test"], RESOLVE,
                               ["tcp", "10.77.0.2", 443])
    flow = Flow(int(CHILD), "10.77.0.2", 40000)
    steps["allowlist_new_flow"] = flow.first
    text = table()
    steps["epoch"] = "ct mark 0x" in text and "ct mark 0x00000001" not in text
    net.update(profile(False), 4)
    steps["relaxed_flow"] = flow.again()
    steps["relaxed"] = child(LITERAL, ["tcp", "10.77.0.2", 443])
    flow.close()
    steps["version"] = net.dns.version if net.dns else -1
    net.stop()
    steps["stopped"] = "minormode" in table()
    net.start(profile(True), 5)  # starting in allowlist-only: no flow from before passes
    text = table()
    steps["start_allowlist_epoch"] = "ct mark 0x" in text and "ct mark 0x00000001" not in text
    net.stop()
    print(json.dumps(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
