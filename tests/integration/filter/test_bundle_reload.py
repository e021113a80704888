"""A signed list bundle installed while the agent runs is in force after `systemctl reload`
(SIGHUP), with the same policy: the real daemon, its DNS filter and nft table in a network
namespace the test creates, a fake upstream. Before, replaced lists were opened only at the
next profile change, so an update could sit unused for days."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from support.netns import MARKS, namespace

ROOT = Path(__file__).parents[3]
pytestmark = list(MARKS)
# no allowlist-only curfew: this test must not depend on the hour in Shanghai
FILTER = '[filter]\nblock_categories = ["adult"]\nallowlist_only_during = []\n'


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
    with namespace(tmp_path, "mmbundle") as ns:
        ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen", "127.0.0.1:5399")
        agent, _ = ns.start_agent(FILTER, lists, upstreams=("--dns-upstream", "127.0.0.1:5399"))
        assert ns.ask("porn.example") == "rcode3", "the first bundle's name is not blocked"
        assert ns.ask("new.example") != "rcode3"

        (src / "adult.txt").write_text("porn.example\nnew.example\n")
        bundle(2)
        assert ns.ask("new.example") != "rcode3", "the new lists were in force before the reload (nothing to pin)"
        agent.send_signal(signal.SIGHUP)  # `ip netns exec` execs the daemon: the pid is the agent's
        deadline = time.monotonic() + 30
        while ns.ask("new.example") != "rcode3":
            assert time.monotonic() < deadline, "the installed bundle never came into force"
            time.sleep(0.1)
        assert ns.ask("porn.example") == "rcode3"
        assert agent.poll() is None
