"""The real daemon at night (simulated clock at 23:30 in Shanghai, the band's curfew: the
filter is allowlist-only and only the emergency set may run) with its exec gate's
catalogue and its DNS filter in a network namespace the test creates: the emergency app's
declared server (`X-Minormode-Domains`) resolves, a game's and the calls app's declared
names do not, nor does any other name. Before, at curfew only the guardian's allowed
domains resolved, so an emergency app could not reach its own servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from support import orphans
from support.tmpfs import mounted_tmpfs

ROOT = Path(__file__).parents[3]
QUERY = ROOT / "tests" / "qemu" / "guest" / "dns_query.py"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a network namespace and the exec gate's tmpfs"),
    pytest.mark.skipif(not all(shutil.which(x) for x in ("ip", "nft", "dbus-daemon")),
                       reason="needs iproute2, nftables and dbus-daemon"),
]

APPS = (
    ("org.example.Sos", "Emergency;", "sos-servers.example"),
    ("org.example.Calls", "Telephony;", "turn.calls.example"),
    ("org.example.Game", "Game;", "game-servers.example"),
)


def test_at_curfew_the_emergency_apps_servers_resolve_and_nothing_else(tmp_path: Path) -> None:
    with mounted_tmpfs("mode=755,size=16m", prefix="mm-domains-gate-") as gated:
        desktop = tmp_path / "applications"
        desktop.mkdir()
        for app_id, categories, domains in APPS:
            program = gated / app_id
            shutil.copyfile("/bin/true", program)
            program.chmod(0o755)
            (desktop / f"{app_id}.desktop").write_text(
                f"[Desktop Entry]\nType=Application\nName={app_id}\nExec={program}\n"
                f"Categories={categories}\nX-Minormode-Domains={domains}\n")
        ns = f"mmdomains-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            prefix = ["ip", "netns", "exec", ns]
            subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True)
            src = tmp_path / "src"
            src.mkdir()
            (src / "adult.txt").write_text("porn.example\n")
            subprocess.run([sys.executable, "-m", "agent.cli", "lists", "compile", "--src", str(src), "--out",
                            str(tmp_path / "lists"), "--partial", "--quiet"], cwd=ROOT, check=True,
                           capture_output=True)
            policy = tmp_path / "policy.toml"
            policy.write_text((ROOT / "config" / "policies" / "8-12.toml").read_text())
            log = tmp_path / "agent.log"
            procs.append(subprocess.Popen([*prefix, sys.executable, "-m", "agent.filter.fakeupstream",
                                           "--listen", "127.0.0.1:5399"], cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            with log.open("wb") as sink:
                agent = subprocess.Popen(
                    [*prefix, sys.executable, "-m", "agent.daemon", "--dev", "--speed", "1",
                     "--start", "2026-12-02T23:30:00+08:00", "--policy", str(policy),
                     "--state", str(tmp_path / "state"), "--child-uid", "65534",
                     "--lists", str(tmp_path / "lists"), "--dns-upstream", "127.0.0.1:5399",
                     "--dns-listen", "127.0.0.1:5300", "--exec-gate-mark", str(gated),
                     "--desktop-dir", str(desktop)],
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
            # the catalogue is read when the gate starts, after the filter: wait for its names
            deadline = time.monotonic() + 60
            while ask("sos-servers.example") != "0":
                assert agent.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "the emergency app's server never resolved at curfew"
                time.sleep(0.1)
            assert ask("unlisted.example") == "3", "the filter is not allowlist-only: this pins nothing"
            assert ask("game-servers.example") == "3", "a game's declared server resolved at curfew"
            assert ask("turn.calls.example") == "3", "at curfew only the emergency set runs"
            assert ask("khanacademy.org") == "0", "the guardian's own allowed domain"
        finally:
            for p in procs:
                orphans.stop(p)
            subprocess.run(["ip", "netns", "del", ns], check=False)
