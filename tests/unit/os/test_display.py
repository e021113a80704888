"""Display facts from a sysfs-shaped tree (this VM has no DRM or backlight to read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.os.display import DisplayWatch, display_on


def connector(root: Path, name: str, *, status: str = "connected", enabled: str = "enabled",
              dpms: str = "On") -> Path:
    c = root / "drm" / name
    c.mkdir(parents=True)
    (c / "status").write_text(status + "\n")
    (c / "enabled").write_text(enabled + "\n")
    (c / "dpms").write_text(dpms + "\n")
    return c


def light(root: Path, name: str, *, bl_power: int = 0, brightness: int = 100) -> Path:
    b = root / "backlight" / name
    b.mkdir(parents=True)
    (b / "bl_power").write_text(f"{bl_power}\n")
    (b / "brightness").write_text(f"{brightness}\n")
    return b


def on(root: Path) -> bool | None:
    return display_on(root / "drm", root / "backlight")


def test_nothing_known(tmp_path: Path) -> None:
    assert on(tmp_path) is None


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, True),
    ({"dpms": "Off"}, False),
    ({"dpms": "Standby"}, False),
    ({"enabled": "disabled"}, False),
])
def test_connector(tmp_path: Path, kw: dict[str, str], expected: bool) -> None:
    connector(tmp_path, "card0-DSI-1", **kw)
    connector(tmp_path, "card0-HDMI-A-1", status="disconnected")  # ignored
    assert on(tmp_path) is expected


def test_a_tablet_panel_needs_its_backlight(tmp_path: Path) -> None:
    connector(tmp_path, "card0-DSI-1")
    b = light(tmp_path, "panel")
    assert on(tmp_path) is True
    (b / "brightness").write_text("0\n")
    assert on(tmp_path) is False
    (b / "brightness").write_text("50\n")
    (b / "bl_power").write_text("4\n")  # FB_BLANK_POWERDOWN
    assert on(tmp_path) is False


def test_watch_reports_changes_only(tmp_path: Path) -> None:
    c = connector(tmp_path, "card0-DSI-1")
    seen: list[bool | None] = []
    w = DisplayWatch(seen.append, drm=tmp_path / "drm", backlight=tmp_path / "backlight")
    w.check()
    w.check()
    (c / "dpms").write_text("Off\n")
    w.check()
    assert seen == [True, False]
