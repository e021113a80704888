"""The rules editor's policy facts and checks against the agent, which is the judge: the
band defaults the editor shows are the agent's own (generated, and checked here), and the
editor's `validate` refuses what the agent's parser refuses and lets through what it accepts
(run in Chromium on the built app, against agent/core/parse.py in this process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from agent.core.parse import PolicyError, policy_from_mapping

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {"version": 3, "age_band": "8-12", "timezone": "Asia/Shanghai"}


def test_the_editors_band_defaults_are_the_agents() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "export-policy-defaults"), "--check"],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


CASES: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("one-minute budget", {"budget": {"daily_minutes": 1}}),
    ("weekend budget", {"budget": {"daily_minutes": 30, "weekend": 90}}),
    ("budget too big", {"budget": {"daily_minutes": 1441}}),
    ("negative budget", {"budget": {"daily_minutes": -1}}),
    ("windows across midnight", {"schedule": {"mon": ["07:00-07:45", "20:00-01:00"], "sat": ["00:00-24:00"]}}),
    ("zero-length window", {"schedule": {"tue": ["08:00-08:00"]}}),
    ("bad window", {"schedule": {"tue": ["8:00-9:00"]}}),
    ("25 o'clock", {"schedule": {"wed": ["23:00-25:00"]}}),
    ("curfew off", {"curfew": {"enabled": False}}),
    ("school on", {"school": {"enabled": True, "mode": "lock", "hours": {"mon": ["08:00-12:00"]},
                              "holidays": ["2026-12-25"]}}),
    ("bad holiday", {"school": {"holidays": ["25/12/2026"]}}),
    ("rest too short", {"rest": {"after_minutes": 2}}),
    ("apps", {"apps": {"limits": {"org.example.Minecraft": 30}, "always_allowed": ["org.example.Homework"],
                       "blocked": ["org.example.VideoShorts"], "payers": ["org.example.Store"]}}),
    ("blocked and allowed", {"apps": {"blocked": ["org.example.X"], "allowed": ["org.example.X"]}}),
    ("bad app id", {"apps": {"allowed": ["not an id"]}}),
    ("spending", {"spending": {"per_transaction": 2000, "per_day": 5000, "per_month": 20000, "ask_above": 1000}}),
    ("per purchase over per day", {"spending": {"per_transaction": 6000, "per_day": 5000}}),
    ("per day over per month", {"spending": {"per_day": 30000}}),
    ("filter", {"filter": {"allow": ["khanacademy.org"], "block": ["example-bad.com"], "safesearch": False,
                           "youtube": "moderate", "block_categories": ["adult", "video"]}}),
    ("bad domain", {"filter": {"block": ["bad domain.com"]}}),
    ("unknown category", {"filter": {"block_categories": ["cats"]}}),
    ("waive", {"waive": ["curfew", "daily_budget"]}),
    ("unknown waiver", {"waive": ["homework"]}),
    ("retention", {"retention_days": 30}),
    ("retention zero", {"retention_days": 0}),
    ("unknown timezone", {"timezone": "Mars/Olympus"}),
    ("time up locks", {"enforcement": {"time_up": "lock", "lock_grace_seconds": 15}}),
    ("time up unknown", {"enforcement": {"time_up": "shutdown"}}),
    ("longest lock grace", {"enforcement": {"lock_grace_seconds": 600}}),
    ("lock grace too short", {"enforcement": {"lock_grace_seconds": 14}}),
    ("lock grace too long", {"enforcement": {"lock_grace_seconds": 601}}),
    ("emergency apps", {"apps": {"emergency": ["org.example.Homework"], "emergency_categories": ["Emergency", "Telephony"]}}),
    ("bad emergency app id", {"apps": {"emergency": ["not an id"]}}),
    ("emergency categories not a list", {"apps": {"emergency_categories": "Emergency"}}),
    ("game hours", {"games": {"hours": {"mon": ["16:00-17:00", "23:30-00:30"], "sat": ["20:00-21:00"]},
                              "holiday_hours": ["10:00-11:00", "20:00-21:00"], "holidays": ["2027-02-17"]}}),
    ("bad game window", {"games": {"hours": {"fri": ["20:00-20:00"]}}}),
    ("bad game holiday window", {"games": {"holiday_hours": ["9-10"]}}),
    ("bad game holiday", {"games": {"holidays": ["2027-13-01"]}}),
    ("band 16-18", {"age_band": "16-18"}),
    ("unknown band", {"age_band": "18-99"}),
]




def test_the_editor_refuses_what_the_agent_refuses(selftest: Page) -> None:
    policies = [BASE | extra for _, extra in CASES]
    problems = selftest.evaluate(
        """(ps) => { const tz = new Set(Intl.supportedValuesOf('timeZone'));
                    return ps.map((p) => window.mmSelftest.policy.validate(p, {timezones: tz})); }""", policies)
    disagree = []
    for (name, _), pol, found in zip(CASES, policies, problems, strict=True):
        try:
            policy_from_mapping(pol, name)
            agent_ok = True
        except PolicyError:
            agent_ok = False
        if agent_ok != (not found):
            disagree.append((name, "agent accepts" if agent_ok else "agent refuses", found))
    assert not disagree, disagree
    assert sum(1 for f in problems if f) >= 12  # the refusing cases are refused


def test_what_the_editor_sends_is_only_what_differs_from_the_band(selftest: Page) -> None:
    got = selftest.evaluate(
        """() => { const p = window.mmSelftest.policy;
                  const e = p.effective({version: 1, age_band: '8-12', timezone: 'Asia/Shanghai'});
                  e.budget.daily_minutes = 1; e.filter.block = ['example-bad.com'];
                  return [p.toPolicy(p.effective({version: 1, age_band: '8-12', timezone: 'Asia/Shanghai'}), 2),
                          p.toPolicy(e, 3)]; }""")
    assert got[0] == {"version": 2, "age_band": "8-12", "timezone": "Asia/Shanghai"}
    assert got[1] == {"version": 3, "age_band": "8-12", "timezone": "Asia/Shanghai",
                      "budget": {"daily_minutes": 1}, "filter": {"block": ["example-bad.com"]}}
    # and the agent reads it back with the values the guardian chose
    parsed = policy_from_mapping(got[1])
    assert parsed.budget.minutes_on(0) == 1 and parsed.filter.block_domains == frozenset({"example-bad.com"})
