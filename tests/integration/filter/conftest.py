"""The namespace the filter's integration tests share (one per test module), and its lists.

Inside the namespace (only `lo`, with extra addresses standing for the outside world):
10.53.0.1/fd53::1 run a fake "outside" resolver on 53 (also the filter's upstream), and
more on 5353 and 40053; 10.99.0.1 is a listed DoH resolver, 10.88.0.1 an unlisted one,
10.88.0.2 a VPN server; 10.77.0.1/fd77::1 are servers nobody resolves (IP literals);
school.test is 10.77.0.2 (www6.school.test fd77::2); the calls app's STUN and TURN servers
are stun.calls.test 10.77.0.4 and turn.calls.test 10.77.0.5 (turn6.calls.test fd77::5),
and a call's peer is 10.77.0.3/fd77::3 (an ICE candidate address, never resolved).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.netns import SERVERS, Netns, namespace

from agent.filter.lists import compile_all

V4 = ("10.53.0.1", "10.99.0.1", "10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.4", "10.77.0.5",
      "10.88.0.1", "10.88.0.2")
V6 = ("fd53::1", "fd77::1", "fd77::2", "fd77::3", "fd77::5")
NAMES = ("school.test=10.77.0.2", "www.school.test=10.77.0.2", "www6.school.test=fd77::2",
         "stun.calls.test=10.77.0.4", "turn.calls.test=10.77.0.5", "turn6.calls.test=fd77::5")
LISTENERS = (
    "10.99.0.1:443/tcp", "10.99.0.1:443/udp", "10.77.0.1:443/tcp", "10.77.0.2:443/tcp",
    "10.53.0.1:853/tcp", "10.53.0.1:853/udp", "10.53.0.1:784/udp", "10.53.0.1:8853/udp",
    "10.77.0.1:51820/udp", "10.77.0.1:1194/tcp",
    "10.77.0.1:443/udp", "10.77.0.1:40000/udp", "10.77.0.2:443/udp", "10.77.0.2:8443/tcp",
    "10.77.0.2:40000/udp", "10.77.0.2:853/tcp", "10.77.0.2:853/udp", "10.77.0.3:50000/udp",
    "10.77.0.4:3478/udp", "10.77.0.5:3478/udp", "10.77.0.5:443/tcp", "10.77.0.5:49152/udp",
    "10.88.0.1:443/tcp", "10.88.0.1:443/udp", "10.88.0.2:443/udp",
    "[fd77::1]:443/tcp", "[fd77::1]:443/udp", "[fd77::2]:443/tcp", "[fd77::2]:443/udp",
    "[fd77::2]:40000/udp", "[fd77::3]:50000/udp", "[fd77::5]:3478/udp",
)


def _resolver(ns: Netns, listen: str, *args: str) -> None:
    p = ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen", listen, *args)
    assert p.stdout is not None and "fake upstream" in p.stdout.readline()


@pytest.fixture(scope="module")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Netns]:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        pytest.skip("needs root, nftables and iproute2 for a network namespace")
    with namespace(tmp_path_factory.mktemp("netns"), "mm5") as ns:
        for addr in V4:
            ns.run("ip", "addr", "add", f"{addr}/32", "dev", "lo")
        for addr in V6:
            ns.run("ip", "-6", "addr", "add", f"{addr}/128", "dev", "lo", "nodad")
        maps = [arg for name in NAMES for arg in ("--map", name)]
        _resolver(ns, "10.53.0.1:53", *maps, "--cname", "cdn-alias.test=hop.cdn.test",
                  "--cname", "hop.cdn.test=www.blocked.test")
        _resolver(ns, "[fd53::1]:53")
        for listen in ("10.53.0.1:5353", "10.53.0.1:40053", "[fd53::1]:5353"):
            _resolver(ns, listen)  # other resolvers on other ports: the child must not reach them
        srv = ns.spawn(sys.executable, str(SERVERS), *LISTENERS)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        yield ns


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("lists")
    src = tmp / "src"
    src.mkdir()
    (src / "adult.txt").write_text("blocked.test\n")
    out = tmp / "out"
    compile_all(src, out)
    out.chmod(0o755)
    return out
