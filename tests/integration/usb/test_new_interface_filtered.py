"""A network interface that appears after the DNS filter's nftables table (a USB Ethernet
adapter the guardian allowed, phone tethering) is covered the moment it exists: the table
matches the child's packets by socket owner (`meta skuid`) in the output hook, never by
interface, so there is nothing to add per interface (agent/os/devicewatch.py only records
it). Shown in a network namespace: the table first, then the new interface; the child's
DNS to a server behind it reaches the filter's port instead, its DNS-over-TLS is refused,
while root's packets go out that interface as before (and are lost: nobody answers)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from support.netns import CHILD, MARKS, PORT, namespace

pytestmark = [*MARKS, pytest.mark.timeout(90)]


def test_an_interface_added_after_the_table_is_covered(tmp_path: Path) -> None:
    with namespace(tmp_path, "mmusb") as ns:
        ns.nft("apply", "--child-uid", str(CHILD), "--port", str(PORT))
        # the filter's stand-in on its port: answers school.test with 10.77.0.9
        fake = ns.spawn(sys.executable, "-m", "agent.filter.fakeupstream", "--listen", f"127.0.0.1:{PORT}",
                        "--map", "school.test=10.77.0.9")
        deadline = time.monotonic() + 15
        while ns.probe(0, [["dns", "127.0.0.1", PORT, "school.test"]]) != ["10.77.0.9"]:
            assert fake.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.1)
        # now the new interface, as a USB adapter brings one
        ns.run("ip", "link", "add", "usb0", "type", "veth", "peer", "name", "usb0peer")
        ns.run("ip", "addr", "add", "10.66.0.1/24", "dev", "usb0")
        ns.run("ip", "link", "set", "usb0", "up")
        ns.run("ip", "link", "set", "usb0peer", "up")  # nobody answers there
        behind = [["dns", "10.66.0.53", 53, "school.test"], ["tcp", "10.66.0.53", 853]]
        child = ns.probe(CHILD, behind)
        assert child[0] == "10.77.0.9", child  # redirected to the filter's port
        assert child[1] == "ECONNREFUSED", child  # DNS-over-TLS refused by the table
        root = ns.probe(0, behind)  # root: out usb0, where nobody answers
        assert root[0] == "timeout" and root[1] in ("timeout", "EHOSTUNREACH"), root
