"""The names an app needs (`X-Minormode-Domains` in its desktop entry) resolve while the
app may run, in every filter mode: at night the band's policy makes the filter
allowlist-only (curfew) and keeps only the emergency set running, and the emergency app
must still reach its servers, while a game's and the calls app's declared names do not
resolve then. The guardian's own blocked domains win over any app's declaration."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.core.decide import decide
from agent.core.parse import load_policy_file
from agent.core.usage import Usage
from agent.execgate.appguard import AppGuard, AppGuardConfig
from agent.execgate.catalogue import DesktopFileError, parse_desktop, scan
from agent.execgate.table import GateConfig
from agent.filter.service import with_app_domains
from agent.store.events import MemoryEventSink

ROOT = Path(__file__).parents[3]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = datetime(2026, 12, 2, 23, 30, tzinfo=SHANGHAI)  # a Wednesday, in the band's 22:00-06:00 curfew
EVENING = datetime(2026, 12, 2, 17, 0, tzinfo=SHANGHAI)  # in the 16:30-21:00 window


def _entry(name: str, domains: str) -> str:
    return f"[Desktop Entry]\nType=Application\nName={name}\nExec=/bin/true\nX-Minormode-Domains={domains}\n"


def test_declared_domains_are_normalised_and_deduplicated() -> None:
    entry = parse_desktop(_entry("SOS", "Help.Example; turn.help.example;;bücher.example;help.example"), "sos.desktop")
    assert entry is not None
    assert entry.domains == ("help.example", "turn.help.example", "xn--bcher-kva.example")


@pytest.mark.parametrize("domains, says", [
    ("not a domain", "'not a domain'"),
    ("example", "'example'"),
    (";".join(f"n{i}.example" for i in range(65)), "at most 64"),
])
def test_a_bad_declaration_names_the_file_and_the_key(domains: str, says: str) -> None:
    with pytest.raises(DesktopFileError) as err:
        parse_desktop(_entry("SOS", domains), "/usr/share/applications/sos.desktop")
    assert "/usr/share/applications/sos.desktop: X-Minormode-Domains" in str(err.value)
    assert says in str(err.value)


def _guard(tmp_path: Path) -> AppGuard:
    apps = tmp_path / "applications"
    apps.mkdir()
    for app_id, categories, domains in (
        ("org.example.Sos", "Emergency;", "sos.example"),
        ("org.example.Calls", "Telephony;", "turn.calls.example;stun.calls.example"),
        ("org.example.Game", "Game;", "game-servers.example"),
    ):
        (apps / f"{app_id}.desktop").write_text(
            _entry(app_id, domains).replace("\nExec", f"\nCategories={categories}\nExec"))
    config = AppGuardConfig(marks=(), child_uids=frozenset({1000}), desktop_dirs=(str(apps),), gate=GateConfig())
    guard = AppGuard(config, MemoryEventSink(), lambda a, t: None, lambda down: None, lambda: NIGHT)
    result = scan([str(apps)])
    assert not result.errors, result.errors
    guard.apps = result.apps
    return guard


def test_at_curfew_only_the_emergency_apps_names_resolve(tmp_path: Path) -> None:
    policy = load_policy_file(ROOT / "config" / "policies" / "8-12.toml")
    guard = _guard(tmp_path)
    night = decide(policy, NIGHT, Usage())
    assert night.filter.allowlist_only, "the band's curfew is no longer allowlist-only: this pins nothing"
    domains = guard.allowed_domains(night.apps)
    assert domains == {"sos.example"}
    profile = with_app_domains(night.filter, domains)
    assert "sos.example" in profile.allow_domains and "game-servers.example" not in profile.allow_domains
    evening = decide(policy, EVENING, Usage())
    assert {"sos.example", "turn.calls.example", "stun.calls.example"} <= guard.allowed_domains(evening.apps)


def test_the_guardians_blocked_domains_win_over_an_apps_declaration() -> None:
    policy = load_policy_file(ROOT / "config" / "policies" / "8-12.toml")
    profile = decide(policy, NIGHT, Usage()).filter
    assert "example-bad.com" in profile.block_domains
    merged = with_app_domains(profile, frozenset({"example-bad.com", "cdn.example-bad.com", "ok.example"}))
    assert merged.allow_domains - profile.allow_domains == {"ok.example"}
    assert with_app_domains(profile, frozenset()) is profile
