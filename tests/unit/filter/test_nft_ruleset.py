"""The nft JSON is a pure function of the settings (the kernel side is tested in a netns)."""

from __future__ import annotations

import json

import pytest

from agent.filter import nft


def rules(doc: dict[str, object]) -> list[dict[str, object]]:
    cmds = doc["nftables"]
    assert isinstance(cmds, list)
    return [c["add"]["rule"] for c in cmds if "add" in c and "rule" in c["add"]]


def test_replaces_the_table_atomically_and_redirects_only_the_child() -> None:
    doc = nft.ruleset(nft.NftSettings(child_uids=(1000, 1001), filter_port=5300))
    cmds = doc["nftables"]
    assert cmds[1:4] == [  # add (no-op if present), delete, add: one transaction
        {"add": {"table": {"family": "inet", "name": "minormode"}}},
        {"delete": {"table": {"family": "inet", "name": "minormode"}}},
        {"add": {"table": {"family": "inet", "name": "minormode"}}},
    ]
    redirects = [r for r in rules(doc) if r["chain"] == "dns_redirect"]
    assert len(redirects) == 2
    for r in redirects:
        text = json.dumps(r["expr"])
        assert '"skuid"' in text and '{"set": [1000, 1001]}' in text
        assert '{"redirect": {"port": 5300}}' in text
    assert "allow4" not in json.dumps([r for r in rules(doc) if r["chain"] == "child"])


def test_allowlist_only_adds_the_allow_set_rules() -> None:
    doc = nft.ruleset(nft.NftSettings(child_uids=(1000,), filter_port=53, allowlist_only=True))
    child = json.dumps([r for r in rules(doc) if r["chain"] == "child"])
    assert child.count('"@allow4"') == 2 and child.count('"@allow6"') == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"child_uids": ()}, "child_uids"),
        ({"child_uids": (0,)}, "root"),
        ({"filter_port": 0}, "filter_port"),
        ({"doh4": ("1.2.3",)}, "1.2.3"),
        ({"vpn_udp": (53,)}, "VPN port 53"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"child_uids": (1000,), "filter_port": 5300}
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        nft.NftSettings(**base)  # type: ignore[arg-type]


def test_learned_addresses_come_in_batches_with_clamped_timeouts() -> None:
    addrs = [(bytes([10, 0, i // 256, i % 256]), 5) for i in range(2500)]
    addrs.append((bytes(15) + b"\x01", 10**6))
    docs = nft.learn_commands(addrs)
    sizes = [len(d["nftables"][0]["add"]["element"]["elem"]) for d in docs]
    assert sizes == [1000, 1000, 500, 1]
    first = docs[0]["nftables"][0]["add"]["element"]["elem"][0]["elem"]
    assert first == {"val": "10.0.0.0", "timeout": nft.MIN_LEARN_TIMEOUT}
    last = docs[-1]["nftables"][0]["add"]["element"]
    assert last["name"] == "allow6"
    assert last["elem"][0]["elem"] == {"val": "::1", "timeout": nft.MAX_LEARN_TIMEOUT}
