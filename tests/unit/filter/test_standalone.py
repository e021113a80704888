"""The standalone filter: its profile file is a policy's [filter] table read by the policy's
parser, and it serves until SIGTERM through the filter's public run()/stop()."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.core.parse import load_policy_file, policy_to_mapping
from agent.filter import dnswire as dw
from agent.filter.fakeupstream import FakeUpstream
from agent.filter.standalone import load_profile

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[3]


def test_a_policys_filter_table_is_a_standalone_profile(tmp_path: Path) -> None:
    policy = load_policy_file(REPO / "config" / "policies" / "8-12.toml")
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(policy_to_mapping(policy)["filter"]))
    assert load_profile(path) == policy.filter


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"allow_domains": ["school.test"]}, "allow_domains"),  # the old standalone key
        ({"block_categories": ["not-a-category"]}, "block_categories"),
        ({"safesearch": "yes"}, "safesearch"),
        ({"block": ["not a domain"]}, "block"),
        (["adult"], "must be a table"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_key(tmp_path: Path, body: object, named: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=named) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_serves_until_sigterm_and_records_its_blocks(tmp_path: Path, lists_dir: Path) -> None:
    upstream = FakeUpstream().start()
    profile, events, ready = tmp_path / "p.json", tmp_path / "events.jsonl", tmp_path / "ready"
    profile.write_text(json.dumps({"block_categories": ["gambling"], "safesearch": False}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.filter.standalone", "--lists", str(lists_dir),
         "--upstream", f"{upstream.addr[0]}:{upstream.addr[1]}", "--listen", "127.0.0.1:0",
         "--profile-json", str(profile), "--events", str(events), "--ready-file", str(ready)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the filter did not become ready"
            time.sleep(0.05)
        host, port = json.loads(ready.read_text())[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            for name, rcode in (("casino.test", dw.NXDOMAIN), ("fine.test", dw.NOERROR)):
                s.sendto(dw.build_query(name), (host, port))
                assert s.recv(4096)[3] & 0xF == rcode
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        upstream.stop()
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["kind"], e["domain"], e["reason"]) for e in lines] == [
        ("dns_blocked", "casino.test", "gambling")]
