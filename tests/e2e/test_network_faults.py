"""Network faults between the tablet and the dashboard, on a veth pair between two network
namespaces this test makes, HTTPS with a CA of the test's own: 200 ms RTT and 1 % loss,
approvals still arrive; a dead link is noticed within 60 s; the device is caught up within
10 s of the link coming back. Needs root (namespaces, nftables).

This machine's kernel has no netem qdisc (sch_netem is not built, and modules cannot be
loaded), so the fault model is: real packet loss, 1 % each way, from nftables `numgen
random` drops on the veth in both namespaces; the latency, 100 ms each way, from a TCP
relay in the server's namespace (tests/e2e/delay_relay.py); a dead link, every packet on
the veth dropped in both namespaces."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).parents[2]
DEV_IP, SRV_IP, PORT, INNER = "10.231.0.1", "10.231.0.2", 8443, 8444

pytestmark = pytest.mark.root


@dataclass
class Link:
    dev: str
    srv: str
    dev_if: str
    srv_if: str

    def loss(self, percent: int) -> list[str]:
        """Commands giving the veth `percent` % packet loss each way (100: a dead link)."""
        out = []
        for ns, ifname, path in ((self.dev, self.dev_if, "dev"), (self.srv, self.srv_if, "srv")):
            rules = Path(f"/tmp/{ns}-{percent}.nft")
            drop = "drop" if percent >= 100 else f"numgen random mod 100 < {percent} drop"
            rules.write_text(f"""table inet mmfault
delete table inet mmfault
table inet mmfault {{
  chain inbound {{ type filter hook input priority 0; iifname "{ifname}" {drop}; }}
  chain outbound {{ type filter hook output priority 0; oifname "{ifname}" {drop}; }}
}}
""")
            out.append(f"ip netns exec {ns} nft -f {rules}")
            del path
        return out


def _run(*cmd: str) -> None:
    subprocess.run(list(cmd), check=True, capture_output=True)


@pytest.fixture
def link() -> Iterator[Link]:
    tag = uuid.uuid4().hex[:6]
    made = Link(f"mmdev{tag}", f"mmsrv{tag}", f"mmd{tag}", f"mms{tag}")
    _run("ip", "netns", "add", made.dev)
    _run("ip", "netns", "add", made.srv)
    try:
        _run("ip", "netns", "exec", made.dev, "ip", "link", "add", made.dev_if, "type", "veth", "peer", "name",
             made.srv_if, "netns", made.srv)
        for ns, ifname, ip in ((made.dev, made.dev_if, DEV_IP), (made.srv, made.srv_if, SRV_IP)):
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/30", "dev", ifname)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", ifname, "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for command in made.loss(1):
            _run(*command.split())
        yield made
    finally:
        subprocess.run(["ip", "netns", "del", made.dev], check=False)
        subprocess.run(["ip", "netns", "del", made.srv], check=False)


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA of the test's own and a server certificate for SRV_IP signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minormode test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SRV_IP)])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(SRV_IP))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_approvals_arrive_over_a_slow_lossy_link_and_a_dead_one_is_noticed_and_caught_up(
        tmp_path: Path, link: Link) -> None:
    ca, cert, key = _certificates(tmp_path)
    url = f"https://{SRV_IP}:{PORT}"
    env = dict(os.environ, MINORMODE_DASHBOARD_ARGON2_TIME_COST="1", MINORMODE_DASHBOARD_ARGON2_MEMORY_KIB="1024",
               MINORMODE_DASHBOARD_ARGON2_PARALLELISM="1")
    with (tmp_path / "dashboard.log").open("wb") as log:
        server = subprocess.Popen(
            ["ip", "netns", "exec", link.srv, sys.executable, "-m", "dashboard.cli", "--db",
             f"sqlite:///{tmp_path / 'dashboard.sqlite'}", "serve", "--host", "127.0.0.1", "--port", str(INNER),
             "--tls-cert", str(cert), "--tls-key", str(key), "--public-origin", url], stdout=log,
            stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    relay = subprocess.Popen(
        ["ip", "netns", "exec", link.srv, sys.executable, str(ROOT / "tests" / "e2e" / "delay_relay.py"),
         "--listen", f"{SRV_IP}:{PORT}", "--to", f"127.0.0.1:{INNER}", "--delay", "0.1"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert relay.stdout is not None and relay.stdout.readline().strip() == "relay ready"
        deadline = time.monotonic() + 60
        while "Uvicorn running" not in (tmp_path / "dashboard.log").read_text(errors="replace"):
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()
            time.sleep(0.1)
        cut, restore = link.loss(100), link.loss(1)
        shaping = [arg for c in cut for arg in ("--cut", c)] + [arg for c in restore for arg in ("--restore", c)]
        scenario = subprocess.run(
            ["ip", "netns", "exec", link.dev, sys.executable, str(ROOT / "tests" / "e2e" / "netem_scenario.py"),
             "--url", url, "--ca", str(ca), "--state", str(tmp_path / "device"), *shaping],
            check=False, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
        (tmp_path / "scenario.log").write_text(scenario.stdout + scenario.stderr)
        assert scenario.returncode == 0, scenario.stderr[:3000]
        found = json.loads(scenario.stdout.strip().splitlines()[-1])
    finally:
        relay.terminate()
        relay.wait(20)
        server.terminate()
        server.wait(20)
    print(f"\nover 200 ms RTT, 1 % loss: grants applied after {[round(x, 2) for x in found['grant_latencies']]} s; "
          f"dead link noticed after {found['noticed_after']:.1f} s; after the link returned: the answer in "
          f"{found['answer_after_return']:.1f} s, every record in {found['caught_up_after_return']:.1f} s")
    assert found["wrong_ca"].startswith("refused")  # TLS verification is on: another CA's server is refused
    assert max(found["grant_latencies"]) < 10
    assert found["noticed_after"] < 60
    assert found["caught_up_after_return"] < 10
