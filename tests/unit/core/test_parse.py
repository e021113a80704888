"""Policy files: every example is valid; every broken policy names key, value and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.scenario import policy

from agent.cli import main as ctl
from agent.core.parse import (
    PolicyError,
    default_policy,
    load_policy_file,
    policy_from_mapping,
    policy_to_mapping,
    toml_key_lines,
)
from agent.core.policy import AgeBand, DefaultKey

EXAMPLES = sorted(Path(__file__).parents[3].joinpath("config", "policies").glob("*.toml"))
HEAD = 'version = 1\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n'


def test_one_documented_example_per_band() -> None:
    bands = {load_policy_file(p).age_band for p in EXAMPLES}
    assert bands == set(AgeBand)
    for path in EXAMPLES:
        assert path.read_text().lstrip().startswith("#"), f"{path} has no explanation"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_check(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl(["check", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


# The Guide's and the game regulator's numbers, written out here as REQUIREMENTS.md gives
# them (not read from agent.core.bands): changing a band's default must fail this table.
# (band, daily minutes, yuan per transaction, yuan per month)
GUIDE_DEFAULTS = [
    (AgeBand.UNDER_3, 40, 0, 0),  # under 8: 40 min (draft Guide); no paid services
    (AgeBand.AGE_3_8, 40, 0, 0),
    (AgeBand.AGE_8_12, 60, 50, 200),  # under 16: 60 min; 8-16: 50 a transaction, 200 a month
    (AgeBand.AGE_12_16, 60, 50, 200),
    (AgeBand.AGE_16_18, 120, 100, 400),  # 16-18: 120 min; 100 a transaction, 400 a month
]


@pytest.mark.parametrize(("band", "minutes", "per_tx_yuan", "per_month_yuan"), GUIDE_DEFAULTS,
                         ids=[str(row[0]) for row in GUIDE_DEFAULTS])
def test_band_defaults_are_the_guides_numbers(
    band: AgeBand, minutes: int, per_tx_yuan: int, per_month_yuan: int
) -> None:
    p = default_policy(band)
    assert p.budget.daily_minutes == (minutes,) * 7
    assert p.curfew.enabled
    assert all(tuple(str(r) for r in day) == ("22:00-06:00",) for day in p.curfew.ranges)
    assert p.rest.enabled and p.rest.after_minutes == 30
    assert p.spending.currency == "CNY"
    assert (p.spending.per_transaction, p.spending.per_month) == (
        per_tx_yuan * 100, per_month_yuan * 100)
    assert p.spending.paid_allowed is (per_tx_yuan > 0)
    if p.spending.paid_allowed:
        # the daily cap is the guardian's choice; the shipped one must sit between the two
        assert p.spending.per_transaction <= p.spending.per_day <= p.spending.per_month
    assert p.games.enabled and p.filter.safesearch
    assert p.enforcement.lock_grace_seconds == 60  # a lock that does not hold ends the session
    assert all(tuple(str(r) for r in p.games.ranges[d]) == ("20:00-21:00",)
               for d in (4, 5, 6))  # Fri, Sat, Sun
    assert all(p.games.ranges[d] == () for d in (0, 1, 2, 3))
    given = ("version", "age_band", "timezone")  # required: whoever writes the policy gives them
    assert all(src == "band default" for key, src in p.sources.items() if key not in given)
    assert {"adult", "gambling", "self-harm"} <= p.filter.block_categories


def test_every_band_is_pinned() -> None:
    assert {row[0] for row in GUIDE_DEFAULTS} == set(AgeBand)


def test_defaults_are_visible_and_waivable() -> None:
    p = policy(waive=["curfew", "rest"], budget={"daily_minutes": 45})
    assert p.waived == {DefaultKey.CURFEW, DefaultKey.REST}
    assert p.sources["budget.daily_minutes"] == "guardian"
    assert p.sources["curfew"] == "waived"
    assert p.sources["rest.after_minutes"] == "band default"
    assert p.sources["budget.mon"] == "guardian"  # the days daily_minutes set, as explain lists them


def test_the_days_a_day_key_sets_are_the_guardians() -> None:
    p = policy(budget={"weekend": 90})
    assert (p.sources["budget.sat"], p.sources["budget.sun"]) == ("guardian", "guardian")
    assert p.sources["budget.mon"] == "band default"
    assert policy(curfew={"every_day": ["21:00-06:00"]}).sources["curfew.tue"] == "guardian"


@pytest.mark.parametrize("band", list(AgeBand))
def test_json_round_trip_gives_the_same_policy(band: AgeBand) -> None:
    p = default_policy(band)
    data = json.loads(json.dumps(policy_to_mapping(p)))
    assert policy_from_mapping(data) == p


def test_json_policy_file(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"version": 3, "age_band": "12-16", "timezone": "UTC",
                             "budget": {"daily_minutes": 75}}))
    assert load_policy_file(f).budget.daily_minutes[0] == 75


BROKEN = [
    # (name, file text, expected fragments in the message)
    ("not TOML", "version = = 1\n", ["not TOML", ":1"]),
    ("not UTF-8", b"\xff\xfe", ["not UTF-8"]),
    ("unknown top key", HEAD + "bedtime = 1\n", ["bedtime", "unknown key", ":4"]),
    ("unknown nested key", HEAD + "[budget]\ndaily_minuts = 30\n", ["budget.daily_minuts", ":5", "unknown key"]),
    ("wrong type", HEAD + '[budget]\ndaily_minutes = "sixty"\n', ["budget.daily_minutes", '"sixty"', "whole number", ":5"]),
    ("negative budget", HEAD + "[budget]\ndaily_minutes = -5\n", ["budget.daily_minutes = -5", "between 0 and 1440", ":5"]),
    ("budget over a day", HEAD + "[budget]\nweekend = 2000\n", ["budget.weekend", "2000"]),
    ("zero-length window", HEAD + '[schedule]\nmon = ["10:00-10:00"]\n', ["schedule.mon", "zero length", ":5"]),
    ("bad time", HEAD + '[schedule]\nmon = ["25:00-26:00"]\n', ["schedule.mon", "not a time of day"]),
    ("bad range text", HEAD + '[curfew]\nevery_day = ["10pm-6am"]\n', ["curfew.every_day", "HH:MM-HH:MM"]),
    ("unknown timezone", 'version = 1\nage_band = "8-12"\ntimezone = "Mars/Olympus"\n', ["timezone", "Mars/Olympus", ":3"]),
    ("timezone path", 'version = 1\nage_band = "8-12"\ntimezone = "../../etc/passwd"\n', ["timezone", "IANA"]),
    ("unknown age band", 'version = 1\nage_band = "teen"\ntimezone = "UTC"\n', ["age_band", "teen", "unknown age band", ":2"]),
    ("missing version", 'age_band = "8-12"\ntimezone = "UTC"\n', ["version", "required"]),
    ("bool as number", HEAD.replace("version = 1", "version = true"), ["version", "whole number"]),
    ("unknown waiver", HEAD + 'waive = ["homework"]\n', ["waive", "homework"]),
    ("per_tx over per_day", HEAD + "[spending]\nper_transaction = 900\nper_day = 800\n", ["spending.per_transaction", "larger than per_day"]),
    ("bad currency", HEAD + '[spending]\ncurrency = "yuan"\n', ["spending.currency", "ISO 4217"]),
    ("unknown filter category", HEAD + '[filter]\nblock_categories = ["cats"]\n', ["filter.block_categories", "cats"]),
    ("bad domain", HEAD + '[filter]\nallow = ["not a domain"]\n', ["filter.allow", "domain name"]),
    ("egress network not CIDR", HEAD + '[filter]\negress_allow = ["turn.example"]\n',
     ["filter.egress_allow", "turn.example", "not an IP network", ":5"]),
    ("egress network host bits", HEAD + '[filter]\negress_allow = ["203.0.113.7/24"]\n',
     ["filter.egress_allow", "203.0.113.7/24", "host bits", ":5"]),
    ("egress network too wide v4", HEAD + '[filter]\negress_allow = ["10.0.0.0/15"]\n',
     ["filter.egress_allow", "10.0.0.0/15", "wider than /16", ":5"]),
    ("egress network too wide v6", HEAD + '[filter]\negress_allow = ["::/0"]\n',
     ["filter.egress_allow", "::/0", "wider than /32", ":5"]),
    ("egress not a list", HEAD + '[filter]\negress_allow = "203.0.113.0/24"\n',
     ["filter.egress_allow", "list of strings", ":5"]),
    ("too many egress networks", HEAD + "[filter]\negress_allow = ["
     + ", ".join(f'"10.{i}.0.0/16"' for i in range(65)) + "]\n",
     ["filter.egress_allow = 65", "at most 64", ":5"]),
    ("blocked and allowed", HEAD + '[apps]\nallowed = ["a.b"]\nblocked = ["a.b"]\n', ["apps.blocked", "either blocked or allowed"]),
    ("bad per-app limit", HEAD + '[apps.limits]\n"org.x.Game" = -1\n', ['apps.limits."org.x.Game"', ":5"]),
    ("table expected", HEAD + "budget = 5\n", ["budget", "must be a table"]),
    ("bad language", HEAD + '[enforcement]\nlanguage = "fr"\n', ["enforcement.language", "zh-CN, en"]),
    ("lock grace too short", HEAD + "[enforcement]\nlock_grace_seconds = 5\n",
     ["enforcement.lock_grace_seconds", "between 15 and 600", ":5"]),
    ("lock grace not a number", HEAD + '[enforcement]\nlock_grace_seconds = "1m"\n',
     ["enforcement.lock_grace_seconds", "whole number", ":5"]),
]


@pytest.mark.parametrize(("name", "text", "fragments"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_policies_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str | bytes, fragments: list[str]
) -> None:
    f = tmp_path / "policy.toml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert ctl(["check", str(f)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} missing from: {err}"


def test_egress_networks_are_normalised_and_shown_by_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "p.toml"
    f.write_text(HEAD + '[filter]\negress_allow = ["203.0.113.0/24", "2001:DB8::/48", '
                 '"198.51.100.9/32"]\nallow = ["school.test"]\n')
    policy = load_policy_file(f)
    assert policy.filter.egress_allow == {"203.0.113.0/24", "2001:db8::/48", "198.51.100.9/32"}
    assert policy_from_mapping(policy_to_mapping(policy)) == policy
    assert ctl(["explain", str(f), "--at", "2026-11-23T17:00"]) == 0
    out = capsys.readouterr().out
    assert ("network exceptions: fixed networks (filter.egress_allow): 198.51.100.9/32, "
            "2001:db8::/48, 203.0.113.0/24") in out
    assert "allowed domains (filter.allow), reached once resolved: school.test" in out
    assert ctl(["explain", str(EXAMPLES[0]), "--at", "2026-11-23T17:00"]) == 0
    assert "fixed networks (filter.egress_allow): none" in capsys.readouterr().out


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(HEAD + "[budget]\ndaily_minutes = -1\n[rest]\nafter_minutes = 0\nbogus = 1\n")
    with pytest.raises(PolicyError) as info:
        load_policy_file(f)
    keys = {p.key for p in info.value.problems}
    assert keys == {"budget.daily_minutes", "rest.after_minutes", "rest.bogus"}


def test_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl(["check", "/nonexistent/policy.toml"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_toml_key_lines() -> None:
    text = '# c\nversion = 1\n[a]\nb = [\n  "x",\n]\nc.d = 2\n[e."f.g"]\nh = { i = 1 }\n'
    lines = toml_key_lines(text)
    assert lines[("version",)] == 2
    assert lines[("a", "b")] == 4
    assert lines[("a", "c", "d")] == 7
    assert lines[("e", "f.g", "h")] == 9


def test_explain_and_simulate(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES[[p.name for p in EXAMPLES].index("8-12.toml")])
    assert ctl(["explain", example, "--at", "2026-11-23T23:00"]) == 0
    out = capsys.readouterr().out
    assert "LOCKED: curfew" in out
    assert ctl(["explain", example, "--at", "2026-11-23T17:00", "--used", "20", "--settings"]) == 0
    out = capsys.readouterr().out
    assert "40 min until the lock" in out
    assert "budget.mon = 60   [guardian]" in out
    assert ctl(["simulate", example, "--day", "2026-11-27"]) == 0
    out = capsys.readouterr().out
    assert "07:45:00  locked (outside_window) until Fri 2026-11-27 16:30" in out
    assert "total use: 60 min" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "{ex}", "--at", "yesterday"],
        ["explain", "{ex}", "--at", "2026-11-23T17:00", "--used", "-3"],
        ["explain", "{ex}", "--at", "2026-11-23T00:10", "--used", "30"],
        ["simulate", "{ex}", "--day", "2026-13-40"],
    ],
)
def test_bad_cli_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES[0])
    assert ctl([a.replace("{ex}", example) for a in argv]) == 2
    assert "minormodectl:" in capsys.readouterr().err


def test_a_policy_from_before_the_lock_grace_still_loads_and_ends_sessions(tmp_path: Path) -> None:
    """`terminate_after_minutes = 0` ("never end the session") in a stored or signed policy
    written before `lock_grace_seconds`: it still loads, and the grace applies."""
    f = tmp_path / "old.toml"
    f.write_text(HEAD + "[enforcement]\nterminate_after_minutes = 0\n")
    assert load_policy_file(f).enforcement.lock_grace_seconds == 60
    f.write_text(HEAD + "[enforcement]\nterminate_after_minutes = 0\nlock_grace_seconds = 30\n")
    assert load_policy_file(f).enforcement.lock_grace_seconds == 30
