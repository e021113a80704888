"""The list the project ships (config/lists/proxies-vpn-doh.txt) compiles strictly and
blocks what it is for, and nothing ordinary."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main
from agent.filter.dnswire import encode_name
from agent.filter.match import BLOCK, FORWARD, ListStore, Matcher

LISTS = Path(__file__).parents[3] / "config" / "lists"


def test_the_shipped_list_compiles_strictly_and_blocks_resolvers(
    tmp_path: Path, mkprofile: type, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["lists", "compile", "--src", str(LISTS), "--out", str(out), "--strict",
                 "--partial"]) == 0  # the content categories are the manufacturer's (no source)
    assert "proxies-vpn-doh: " in capsys.readouterr().err
    m = Matcher(mkprofile(block=("proxies-vpn-doh",)), 1, ListStore(out))  # type: ignore[operator]
    assert m.missing == ()
    for name in ("dns.google", "dns.alidns.com", "doh.pub", "chrome.cloudflare-dns.com",
                 "abc123.dns.nextdns.io", "us8812.nordvpn.com", "bridges.torproject.org"):
        v = m.verdict(encode_name(name))
        assert (v.action, v.reason) == (BLOCK, "proxies-vpn-doh"), name
    for name in ("www.google.com", "www.cloudflare.com", "www.apple.com", "example.org"):
        assert m.verdict(encode_name(name)).action == FORWARD, name
    sources = (LISTS / "SOURCES.md").read_text()
    assert "proxies-vpn-doh.txt" in sources and "2026-12-01" in sources
