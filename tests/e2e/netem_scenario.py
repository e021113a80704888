"""The network-fault scenario, run inside the device's network namespace by
tests/e2e/test_network_faults.py (not collected by pytest): the device's real sync client
and a guardian, both talking HTTPS to the dashboard in the server's namespace across a veth
pair with 200 ms RTT and 1 % loss (tc netem at both ends). Prints one JSON object of
measurements on its last line.

    ip netns exec DEV python netem_scenario.py --url https://10.231.0.2:8443 --ca CA --state DIR
        --cut 'ip netns exec DEV tc qdisc change ...' --restore '...'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
sys.path.insert(0, str(Path(__file__).parents[1]))

from support.dashboard_clients import GuardianClient
from support.sync_device import SyncedDevice, pair, until
from support.trust_device import policy_json

from agent.api.controller import ReportKind
from agent.store.events import Event, EventKind
from agent.sync.http import DashboardClient, UnreachableError
from protocol.messages import GrantTime

OPEN = ["windows", "curfew", "school", "rest", "games"]


def shape(commands: list[str]) -> None:
    for command in commands:
        subprocess.run(command.split(), check=True)


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--cut", action="append", default=[], help="commands that cut the link")
    p.add_argument("--restore", action="append", default=[], help="commands that bring it back")
    args = p.parse_args()
    out: dict[str, object] = {}
    wrong = DashboardClient(args.url)  # the system's CAs only: the test CA is not among them
    try:
        await wrong.call("GET", "/server-key")
        out["wrong_ca"] = "accepted"
    except UnreachableError as exc:
        out["wrong_ca"] = f"refused: {exc}"[:200]
    finally:
        await wrong.close()
    synced = await SyncedDevice.start(args.state, args.url, ca_file=args.ca)
    guardian = GuardianClient(args.url, "mum@example.com", verify=str(args.ca)).signup()
    try:
        family = await pair(synced, guardian, policy=policy_json(1, waive=OPEN, budget={"daily_minutes": 30}))
        device = synced.device
        latencies = []
        for _ in range(5):
            before = device.agent.tick().budget_seconds or 0
            mid, sealed = guardian.ref.decide(synced.id, GrantTime(1, None), int(time.time()))
            sent = time.monotonic()
            r = await asyncio.to_thread(guardian.send, family, synced.id, mid, sealed, "decision")
            assert r.status_code == 201, r.text
            await until(lambda: (device.agent.tick().budget_seconds or 0) == before + 60, timeout=30,  # noqa: B023
                        what="a grant over the slow link")
            latencies.append(time.monotonic() - sent)
        out["grant_latencies"] = latencies
        await until(lambda: synced.sync.connected, timeout=30, what="the push socket")
        shape(args.cut)
        cut = time.monotonic()
        await until(lambda: not synced.sync.connected, timeout=120, step=0.1, what="the dead link noticed")
        out["noticed_after"] = time.monotonic() - cut
        # the child keeps using the device meanwhile: reports (up to their burst: more are
        # refused to the child, agent.core.flood) and blocked sites, 50 records in all
        for i in range(5):
            device.controller.report(ReportKind.OTHER, f"offline {i}")
        for i in range(45):
            device.agent.events.record(Event(EventKind.DNS_BLOCKED, device.agent.now(),
                                             {"domain": f"game{i}.example", "reason": "category", "count": 1}))
        device.journal.close_segment()
        head = device.journal.head_seq
        shape(args.restore)
        back = time.monotonic()
        before = device.agent.tick().budget_seconds or 0
        mid, sealed = guardian.ref.decide(synced.id, GrantTime(2, None), int(time.time()))
        r = await asyncio.to_thread(guardian.send, family, synced.id, mid, sealed, "decision")
        assert r.status_code == 201, r.text
        await until(lambda: (device.agent.tick().budget_seconds or 0) == before + 120, timeout=60, step=0.05,
                    what="the grant after the link came back")
        out["answer_after_return"] = time.monotonic() - back
        await until(lambda: synced.sync.store.cursor().acked >= head, timeout=60, step=0.05, what="caught up")
        out["caught_up_after_return"] = time.monotonic() - back
    finally:
        await synced.stop()
        guardian.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
