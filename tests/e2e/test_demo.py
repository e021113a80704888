"""The README's first command works: `scripts/demo` starts the dashboard and a simulated
tablet, prints the URL and the pairing code; a guardian signs up, types the code, compares
the SAS with what the tablet printed, and the tablet says it is paired."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from support.agent_process import read_until
from support.dashboard_clients import GuardianClient

from protocol.pairing import Offer, Reveal

ROOT = Path(__file__).parents[2]


def test_the_demo_pairs_a_guardian_by_the_printed_code(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--fresh", "--state",
                             str(tmp_path / "demo"), "--port", "18180", "--confirm", "yes", "--for", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    guardian = None
    try:
        url = read_until(proc, r"dashboard:\s+(http://127\.0\.0\.1:\d+)").group(1)
        code = read_until(proc, r"pairing code: (\d{4}) (\d{4})")
        guardian = GuardianClient(url, "parent@example.com").signup()
        claimed = guardian.ok("POST", "/api/v1/pairing/claim", json={"code": code.group(1) + code.group(2)})
        gp = guardian.ref.start_pairing(Offer.from_json(claimed["offer"]))
        session = claimed["session"]
        guardian.ok("POST", f"/api/v1/pairing/{session}/response", json=gp.response().to_json())
        reveal = guardian.call("GET", f"/api/v1/pairing/{session}/reveal", params={"wait": 20})
        assert reveal.status_code == 200, reveal.text
        sas = gp.on_reveal(Reveal.from_json(reveal.json()))
        shown = read_until(proc, r"the tablet shows (\d{3}) (\d{3})")
        assert shown.group(1) + shown.group(2) == sas  # the person compares the two screens
        notice = guardian.ok("GET", "/api/v1/consent/notice", params={"language": "en"})
        guardian.ok("POST", f"/api/v1/pairing/{session}/consent", json={
            "version": notice["version"], "language": "en", "accepted": True, "usage_reports": True,
            "push_notifications": False})
        complete = guardian.ref.finish_pairing(gp, int(time.time()))
        ids = [i for i, _ in complete.messages]
        guardian.ok("POST", f"/api/v1/pairing/{session}/complete", json={
            "complete": complete.to_json(),
            "meta": [{"id": ids[0], "type": "consent", "seq": 0}, {"id": ids[1], "type": "decision", "seq": 0}]})
        read_until(proc, r"paired with Mum")
        paired = guardian.call("GET", f"/api/v1/pairing/{session}/paired", params={"wait": 20})
        assert paired.status_code == 200 and paired.json()["state"] == "paired"
    finally:
        if guardian is not None:
            guardian.close()
        proc.terminate()
        assert proc.wait(30) == 0
