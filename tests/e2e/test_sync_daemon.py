"""End to end as processes on loopback: `minormode-dashboard serve` and the agent daemon in
development mode, paired with `minormodectl pair`; a signed one-minute budget locks the
simulated child; the child's request reaches the guardian; the guardian's grants unlock
it (guardian-send to unlock measured); kill -9 of either side during uploads loses and
duplicates nothing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.agent_process import ROOT, AgentBus, AgentProcess, read_until
from support.dashboard_clients import GuardianClient
from support.dashboard_server import ProcessServer

from protocol.messages import ChildRequest, GrantTime
from protocol.pairing import Offer, Reveal
from protocol.sealing import request_ctx

OPEN = ["windows", "curfew", "school", "rest", "games"]


def policy(version: int, minutes: int) -> dict[str, Any]:
    return {"version": version, "age_band": "8-12", "timezone": "Asia/Shanghai", "waive": OPEN,
            "budget": {"daily_minutes": minutes}, "enforcement": {"language": "en"}}


def pair_with_cli(agent: AgentProcess, guardian: GuardianClient, pol: dict[str, Any] | None) -> str:
    """`minormodectl pair` on the tablet, the guardian on the dashboard; the family id."""
    cli = subprocess.Popen([sys.executable, "-m", "agent.cli", "pair", "--bus", agent.address, "--confirm", "yes",
                            "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           cwd=ROOT)
    try:
        code = read_until(cli, r"pairing code: (\d{4}) (\d{4})")
        claimed = guardian.ok("POST", "/api/v1/pairing/claim", json={"code": code.group(1) + code.group(2)})
        gp = guardian.ref.start_pairing(Offer.from_json(claimed["offer"]))
        session = claimed["session"]
        guardian.ok("POST", f"/api/v1/pairing/{session}/response", json=gp.response().to_json())
        r = guardian.call("GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 20})
        assert r.status_code == 200, r.text
        sas = gp.on_reveal(Reveal.from_json(r.json()))
        shown = read_until(cli, r"show (\d{3}) (\d{3})")
        assert shown.group(1) + shown.group(2) == sas
        notice = guardian.ok("GET", "/api/v1/consent/notice", params={"language": "en"})
        guardian.ok("POST", f"/api/v1/pairing/{session}/consent", json={
            "version": notice["version"], "language": "en", "accepted": True, "usage_reports": True,
            "push_notifications": False})
        complete = guardian.ref.finish_pairing(gp, int(time.time()), policy=pol)
        ids = [i for i, _ in complete.messages]
        meta = [{"id": ids[0], "type": "consent", "seq": 0}, {"id": ids[1], "type": "decision", "seq": 0}]
        if pol is not None:
            meta.append({"id": ids[2], "type": "policy", "seq": pol["version"], "retention_days": 30})
        guardian.ok("POST", f"/api/v1/pairing/{session}/complete", json={"complete": complete.to_json(), "meta": meta})
        read_until(cli, r"paired with Mum")
        assert cli.wait(30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    assert guardian.ref.keyring is not None
    return guardian.ref.keyring.family


@pytest.fixture
def dashboard(tmp_path: Path) -> Any:
    server = ProcessServer(f"sqlite:///{tmp_path / 'dashboard.sqlite'}", tmp_path / "dashboard.log").start()
    yield server
    server.stop()


def test_paired_locked_asked_and_granted_with_the_latency_measured(tmp_path: Path, dashboard: ProcessServer) -> None:
    agent = AgentProcess(tmp_path / "tablet", "--dashboard", dashboard.url).start()
    guardian = GuardianClient(dashboard.url, "mum@example.com").signup()
    bus = AgentBus(agent.address)
    try:
        family = pair_with_cli(agent, guardian, policy(1, 1))
        device = bus.trust()["DeviceId"]
        bus.until("the one-minute budget spent", lambda b: b.status()["Locked"])
        assert bus.status()["LockReason"] == "budget_spent"
        [asked] = agent.as_child({"member": "RequestMoreTime", "signature": "us", "args": [5, "one more level"]})
        assert asked["ok"], asked
        rid = asked["body"][0]

        def requests() -> list[dict[str, Any]]:
            return list(guardian.ok("GET", f"/api/v1/families/{family}/devices/{device}/requests",
                                    params={"status": "open"}))

        deadline = time.monotonic() + 15
        while not (items := requests()):
            assert time.monotonic() < deadline, "the child's request never reached the guardian"
            time.sleep(0.05)
        _, request = guardian.ref.open_from_device(items[0]["sealed"], request_ctx(family, device, items[0]["id"]),
                                                   device)
        assert isinstance(request, ChildRequest) and request.request_id == rid and request.minutes == 5
        latencies = []
        for i in range(20):
            bus.until("locked again", lambda b: b.status()["Locked"])
            before = bus.status()["BudgetSeconds"]
            mid, sealed = guardian.ref.decide(device, GrantTime(1, rid if i == 0 else None), int(time.time()))
            sent = time.monotonic()
            r = guardian.send(family, device, mid, sealed, "decision")
            assert r.status_code == 201, r.text
            # the grant's minute lasts one second at speed 60: a status read held up longer
            # than that (a slow disk under the agent's journal) would miss the unlocked state,
            # so what is awaited is the budget, which stays raised; then, that it unlocked
            seen: dict[str, Any] = {}

            def applied(b: AgentBus, seen: dict[str, Any] = seen, before: int = before) -> bool:
                seen.update(b.status())
                return bool(seen["BudgetSeconds"] > before)

            bus.until("the grant applied", applied, timeout=10, step=0.005)
            latencies.append(time.monotonic() - sent)
            assert seen["BudgetSeconds"] == before + 60, seen
            assert not seen["Locked"] or seen["UsedSeconds"] >= seen["BudgetSeconds"], seen
        latencies.sort()
        p50, p99 = latencies[len(latencies) // 2], latencies[-1]
        print(f"\nguardian send -> unlocked over {len(latencies)} grants: p50 {p50 * 1000:.0f} ms, "
              f"max (p99 of 20) {p99 * 1000:.0f} ms")
        assert p99 < 10  # a bound on the wait, not the goal (<2 s, recorded in tests/bench/RESULTS.md)
        status = json.loads(agent.cli("sync", "status", "--json", "--bus", agent.address).stdout)
        assert status["Connected"] and status["PolicyVersion"] == 1 and status["Paired"]
    finally:
        bus.close()
        guardian.close()
        assert agent.stop() == 0


CYCLES = 100


# 100 agent restarts take ~3.5 min on an idle 2-core machine and more under load: the
# suite's 300 s per-test bound is too tight for this one (each cycle is bounded on its own)
@pytest.mark.timeout(900)
def test_kill_9_of_either_side_during_uploads_loses_and_duplicates_nothing(tmp_path: Path,
                                                                          dashboard: ProcessServer) -> None:
    agent = AgentProcess(tmp_path / "tablet", "--dashboard", dashboard.url, speed=1).start()
    guardian = GuardianClient(dashboard.url, "mum@example.com").signup()
    try:
        family = pair_with_cli(agent, guardian, policy(1, 600))
        device = AgentBus(agent.address)
        device_id = device.trust()["DeviceId"]
        device.close()
        rng = random.Random(14)
        for cycle in range(CYCLES):
            calls = [{"member": "Report", "signature": "ss", "args": ["other", f"cycle {cycle} report {i}"]}
                     for i in range(5)]
            agent.as_child(*calls)
            time.sleep(rng.uniform(0, 0.3))  # a random point in the uploads: what the chaos is about
            agent.kill9()
            if cycle % 10 == 9:
                dashboard.proc.kill()  # type: ignore[union-attr]
                dashboard.proc.wait(10)  # type: ignore[union-attr]
                dashboard.start()
            agent.start()
        bus = AgentBus(agent.address)
        try:
            bus.until("every record acknowledged", lambda b: b.trust()["PendingUploads"] == 0, timeout=120, step=0.1)
        finally:
            bus.close()
    finally:
        assert agent.stop() == 0
    verify = agent.cli("journal", "verify", "--state", str(agent.state), "--json", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the chain and every signature hold
    head = int(json.loads(verify.stdout)["records"])
    seqs: list[int] = []
    after = 0
    while True:
        page = guardian.ok("GET", f"/api/v1/families/{family}/devices/{device_id}/journal",
                           params={"after": after, "limit": 1000})
        seqs += [r["seq"] for r in page["records"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seqs == list(range(1, len(seqs) + 1)), "a record lost or duplicated on the server"
    server_view = guardian.ok("GET", f"/api/v1/families/{family}/devices/{device_id}")
    assert server_view["journal_cursor"] == seqs[-1] == head, "the server's cursor is not the device's head"
    reports = [r for r in guardian.ok("GET", f"/api/v1/families/{family}/devices/{device_id}/requests",
                                      params={"status": "all"}) if r["kind"] == "report"]
    assert len(reports) == len({r["id"] for r in reports}) == 5 * CYCLES
    guardian.close()
