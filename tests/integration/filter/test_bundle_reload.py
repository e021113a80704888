"""A signed list bundle installed while the agent runs is in force after `systemctl reload`
(SIGHUP), with the same policy: the real daemon, its DNS filter and nft table in a network
namespace the test creates, a fake upstream. Before, replaced lists were opened only at the
next profile change, so an update could sit unused for days."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from support import orphans

ROOT = Path(__file__).parents[3]
QUERY = ROOT / "tests" / "qemu" / "guest" / "dns_query.py"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.skipif(not all(shutil.which(x) for x in ("ip", "nft")), reason="needs iproute2 and nftables"),
]


def cli(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "agent.cli", *argv], cwd=ROOT, check=True, capture_output=True)


def test_a_bundle_installed_while_the_agent_runs_is_in_force_after_a_reload(tmp_path: Path) -> None:
    keys, src, lists = tmp_path / "keys", tmp_path / "src", tmp_path / "lists"
    keys.mkdir()
    src.mkdir()
    cli("lists", "keygen", "--out", str(tmp_path / "acme"))
    (tmp_path / "acme.pub").rename(keys / "acme.pub")
    (src / "adult.txt").write_text("porn.example\n")

    def bundle(version: int) -> None:
        out = tmp_path / f"bundle-{version}"
        cli("lists", "sign", "--key", str(tmp_path / "acme.key"), "--src", str(src), "--version", str(version),
            "--out", str(out))
        cli("lists", "install", str(out), "--keys", str(keys), "--out", str(lists), "--quiet")

    bundle(1)
    ns = f"mmbundle-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        prefix = ["ip", "netns", "exec", ns]
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True)
        policy = tmp_path / "policy.toml"
        # the band's policy, but the filter's allowlist-only curfew off: this test must not
        # depend on the hour in Shanghai (at night every unlisted name is refused anyway)
        text = (ROOT / "config" / "policies" / "8-12.toml").read_text()
        assert 'allowlist_only_during = ["curfew"]' in text
        policy.write_text(text.replace('allowlist_only_during = ["curfew"]', "allowlist_only_during = []"))
        log = tmp_path / "agent.log"
        procs.append(subprocess.Popen([*prefix, sys.executable, "-m", "agent.filter.fakeupstream", "--listen",
                                       "127.0.0.1:5399"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        with log.open("wb") as sink:
            agent = subprocess.Popen(
                [*prefix, sys.executable, "-m", "agent.daemon", "--policy", str(policy), "--state",
                 str(tmp_path / "state"), "--bus-address", "none", "--child-uid", "65534", "--lists", str(lists),
                 "--dns-upstream", "127.0.0.1:5399", "--dns-listen", "127.0.0.1:5300"],
                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        procs.append(agent)

        def ask(name: str) -> str:
            out = subprocess.run([*prefix, sys.executable, str(QUERY), "127.0.0.1", "5300", name],
                                 capture_output=True, text=True, timeout=30, check=True)
            return out.stdout.split()[0]

        deadline = time.monotonic() + 120
        while "enforcing policy version" not in log.read_text(errors="replace"):
            assert agent.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        assert ask("porn.example") == "3", "the first bundle's name is not blocked"
        assert ask("new.example") == "0"

        (src / "adult.txt").write_text("porn.example\nnew.example\n")
        bundle(2)
        assert ask("new.example") == "0", "the new lists were in force before the reload (nothing to pin)"
        agent.send_signal(signal.SIGHUP)  # `ip netns exec` execs the daemon: the pid is the agent's
        deadline = time.monotonic() + 30
        while ask("new.example") != "3":
            assert time.monotonic() < deadline, "the installed bundle never came into force"
            time.sleep(0.1)
        assert ask("porn.example") == "3"
        assert agent.poll() is None
    finally:
        for p in procs:
            orphans.stop(p)
        subprocess.run(["ip", "netns", "del", ns], check=False)
