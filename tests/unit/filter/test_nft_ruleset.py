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


def test_egress_is_closed_in_every_table_and_ends_in_a_reject() -> None:
    """Learned and fixed addresses pass (and mark their flow with the epoch); nothing else
    the child sends gets past the chain's last rule."""
    doc = nft.ruleset(nft.NftSettings(child_uids=(1000,), filter_port=53, epoch=7,
                                      fixed_allow=("203.0.113.0/24", "2001:db8::/48")))
    child = [r for r in rules(doc) if r["chain"] == "child"]
    egress = [json.dumps(r["expr"]) for r in child if r.get("comment") == nft.EGRESS]
    assert sum('"@allow4"' in e or '"@fixed4"' in e or '"@allow6"' in e or '"@fixed6"' in e
               for e in egress) == 4
    assert all('"value": 7' in e for e in egress if '"@' in e)  # ct mark set 7
    assert '"established"' in egress[0] and '"right": 7' in egress[0]
    assert child[-1]["expr"] == [nft.REJECT_ANY]
    sets = {c["add"]["set"]["name"]: c["add"]["set"].get("elem", [])
            for c in doc["nftables"] if "add" in c and "set" in c["add"]}
    assert sets["fixed4"] == [{"prefix": {"addr": "203.0.113.0", "len": 24}}]
    assert sets["fixed6"] == [{"prefix": {"addr": "2001:db8::", "len": 48}}]
    assert sets["allow4"] == [] and sets["allow6"] == []


def test_fixed_networks_are_replaced_in_one_transaction() -> None:
    doc = nft.fixed_commands(["198.51.100.0/24"])
    assert [next(iter(c)) for c in doc["nftables"]] == ["flush", "add", "flush"]
    assert doc["nftables"][1]["add"]["element"]["name"] == "fixed4"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"child_uids": ()}, "child_uids"),
        ({"child_uids": (0,)}, "root"),
        ({"filter_port": 0}, "filter_port"),
        ({"doh4": ("1.2.3",)}, "1.2.3"),
        ({"vpn_udp": (53,)}, "VPN port 53"),
        ({"fixed_allow": ("10.0.0.300/8",)}, "10.0.0.300"),
        ({"epoch": 0}, "epoch"),
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
    # add (if missing), delete, add again: the new timeout holds even if it was there
    assert [next(iter(c)) for c in docs[0]["nftables"]] == ["add", "delete", "add"]
    assert docs[0]["nftables"][1]["delete"]["element"]["elem"][0] == "10.0.0.0"
    first = docs[0]["nftables"][2]["add"]["element"]["elem"][0]["elem"]
    assert first == {"val": "10.0.0.0", "timeout": nft.MIN_LEARN_TIMEOUT}
    last = docs[-1]["nftables"][2]["add"]["element"]
    assert last["name"] == "allow6"
    assert last["elem"][0]["elem"] == {"val": "::1", "timeout": nft.MAX_LEARN_TIMEOUT}


class RecordingNft:
    def __init__(self) -> None:
        self.docs: list[dict[str, object]] = []

    def run(self, document: dict[str, object]) -> None:
        self.docs.append(document)


def test_the_learner_skips_addresses_that_outlive_the_answer_and_refreshes_the_rest() -> None:
    now = [1000.0]
    rec = RecordingNft()
    learner = nft.NftSetLearner(rec, clock=lambda: now[0], max_known=3)  # type: ignore[arg-type]
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    learner.learn([(a, 60), (a, 30)])  # one element, the longer TTL: timeout 300
    assert learner.transactions == 1
    now[0] += 100  # 200 s left: an answer with TTL 60 (+ 60 grace) fits, one with 300 not
    learner.learn([(a, 60)])
    assert learner.transactions == 1
    learner.learn([(a, 300), (b, 10)])
    assert learner.transactions == 2
    elems = rec.docs[-1]["nftables"][2]["add"]["element"]["elem"]  # type: ignore[index]
    assert [e["elem"]["timeout"] for e in elems] == [420, 300]  # TTL + grace + a minute
    now[0] += 59  # the same full-TTL answer again: still a minute's headroom, no transaction
    learner.learn([(a, 300)])
    assert learner.transactions == 2
    now[0] += 2
    learner.learn([(a, 300)])
    assert learner.transactions == 3
    learner.learn([(bytes([10, 0, 0, i]), 10) for i in range(3, 6)])  # over max_known: forgets
    learner.learn([(a, 10)])
    assert learner.transactions == 5  # forgotten means refreshed, never skipped wrongly
