"""The real daemon at night (simulated clock at 23:30 in Shanghai, the band's curfew: the
filter is allowlist-only and only the emergency set may run) with its exec gate's
catalogue and its DNS filter in a network namespace the test creates: the emergency app's
declared server (`X-Minormode-Domains`) resolves, a game's and the calls app's declared
names do not, nor does any other name. Before, at curfew only the guardian's allowed
domains resolved, so an emergency app could not reach its own servers."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from support.netns import MARKS, namespace
from support.tmpfs import mounted_tmpfs

from agent.filter.lists import compile_all

ROOT = Path(__file__).parents[3]
pytestmark = list(MARKS)

APPS = (
    ("org.example.Sos", "Emergency;", "sos-servers.example"),
    ("org.example.Calls", "Telephony;", "turn.calls.example"),
    ("org.example.Game", "Game;", "game-servers.example"),
)


def test_at_curfew_the_emergency_apps_servers_resolve_and_nothing_else(tmp_path: Path) -> None:
    src, lists = tmp_path / "src", tmp_path / "lists"
    src.mkdir()
    compile_all(src, lists)
    with mounted_tmpfs("mode=755,size=16m", prefix="mm-domains-gate-") as gated, \
            namespace(tmp_path, "mmdomains") as ns:
        desktop = tmp_path / "applications"
        desktop.mkdir()
        for app_id, categories, domains in APPS:
            program = gated / app_id
            shutil.copyfile("/bin/true", program)
            program.chmod(0o755)
            (desktop / f"{app_id}.desktop").write_text(
                f"[Desktop Entry]\nType=Application\nName={app_id}\nExec={program}\n"
                f"Categories={categories}\nX-Minormode-Domains={domains}\n")
        ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen", "127.0.0.1:5399")
        agent, _ = ns.start_agent(
            "", lists, "--speed", "1", "--start", "2026-12-02T23:30:00+08:00", "--exec-gate-mark", str(gated),
            "--desktop-dir", str(desktop), upstreams=("--dns-upstream", "127.0.0.1:5399"),
            policy_text=(ROOT / "config" / "policies" / "8-12.toml").read_text())
        # the catalogue is read when the gate starts, after the filter: wait for its names
        deadline = time.monotonic() + 60
        while ns.ask("sos-servers.example") == "rcode3":
            assert agent.poll() is None
            assert time.monotonic() < deadline, "the emergency app's server never resolved at curfew"
            time.sleep(0.1)
        assert ns.ask("unlisted.example") == "rcode3", "the filter is not allowlist-only: this pins nothing"
        assert ns.ask("game-servers.example") == "rcode3", "a game's declared server resolved at curfew"
        assert ns.ask("turn.calls.example") == "rcode3", "at curfew only the emergency set runs"
        assert ns.ask("khanacademy.org") != "rcode3", "the guardian's own allowed domain"
