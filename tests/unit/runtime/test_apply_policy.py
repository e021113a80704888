"""Agent.apply_policy is the one place a policy takes effect; load_policy parses a file and
hands it over. The version rule: older refused, equal accepted."""

from __future__ import annotations

from pathlib import Path

from support.runtime import agent_on
from support.scenario import iso, policy

from agent.dev.clock import ManualClock
from agent.store.events import EventKind
from agent.store.state import StateStore


def test_apply_policy_stores_records_and_redecides(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")))
    loaded = agent.apply_policy(policy(version=4, budget={"every_day": 20}), "guardian message 7")
    assert loaded.ok and loaded.message == "version 4 loaded"
    assert agent.policy.version == 4 and agent._wake.is_set()
    saved = store.last_policy()
    assert saved is not None and saved[:2] == (4, "guardian message 7")
    assert [e.data for e in store.events(EventKind.POLICY_LOADED)] == [{"version": 4}]
    assert agent.apply_policy(policy(version=4), "again").ok  # an equal version is accepted
    refused = agent.apply_policy(policy(version=3), "replayed")
    assert not refused.ok
    assert refused.message == "replayed: version 3 is older than the loaded version 4"
    assert agent.policy.version == 4 and store.last_policy() is not None
    [rejected] = store.events(EventKind.POLICY_REJECTED)
    assert rejected.data == {"source": "replayed", "why": refused.message}


def test_load_policy_parses_then_applies(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    good = tmp_path / "policy.toml"
    good.write_text('version = 2\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n')
    agent = agent_on(store, ManualClock(iso("2026-11-23T10:00")), good)
    assert agent.load_policy().ok and agent.policy.version == 2
    assert store.last_policy() is not None and store.last_policy()[1] == str(good)  # type: ignore[index]
    good.write_text("version = = 3\n")
    bad = agent.load_policy()
    assert not bad.ok and str(good) in bad.message and agent.policy.version == 2
    assert store.events(EventKind.POLICY_REJECTED)[0].data["source"] == str(good)
    assert not agent_on(store, ManualClock(iso("2026-11-23T10:00"))).load_policy().ok  # no file
