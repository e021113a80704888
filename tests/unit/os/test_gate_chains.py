"""The interpreter chain of an allowed script, step by step through `GateLoop._decide`
with real files (no fanotify group: the loop only fstat's the event's fd here). This
process stands in for the child (its uid is made restricted)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.execgate import loop as execgate
from agent.execgate.loop import GateLoop
from agent.execgate.table import GateConfig, build_table

TID = os.getpid()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("interp", "loader", "other"):
        out[name] = tmp_path / name
        out[name].write_bytes(b"\x7fELF" + name.encode())
    out["script"] = tmp_path / "script"
    out["script"].write_text(f"#!{out['interp']}\nexit 0\n")
    return out


@pytest.fixture
def loop(files: dict[str, Path]) -> Iterator[GateLoop]:
    from agent.core.decision import AppAccess
    from agent.core.policy import AppDefault, AppRules

    rules = AppRules(AppDefault.DENY, frozenset(), frozenset(), frozenset(), frozenset(), frozenset(),
                     frozenset(), frozenset(), {}, {}, frozenset())
    access = AppAccess(rules, False, False, True, frozenset(), frozenset())
    config = GateConfig(also_restricted=frozenset({os.getuid()}), restricted_uids=(-2, -2),
                        base_paths=(str(files["script"]), str(files["loader"])))
    yield GateLoop(-1, build_table({}, access, config, 1), cache=False)


def _exec(loop: GateLoop, path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return loop._decide(fd, TID)[0]
    finally:
        os.close(fd)


def test_the_interpreter_passes_once_after_its_script_only(loop: GateLoop, files: dict[str, Path]) -> None:
    assert not _exec(loop, files["interp"]), "the interpreter alone ran"
    assert _exec(loop, files["script"])
    assert _exec(loop, files["interp"])
    assert not _exec(loop, files["interp"]), "one script exec let the interpreter run twice"


def test_the_loaders_exec_in_between_keeps_the_chain(loop: GateLoop, files: dict[str, Path]) -> None:
    """Before the loader is cached, its exec comes between env's and env's target's."""
    assert _exec(loop, files["script"])
    assert _exec(loop, files["loader"])
    assert not _exec(loop, files["other"])
    assert _exec(loop, files["interp"])


def test_a_chain_lapses_when_the_exec_failed_midway(
        loop: GateLoop, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exec(loop, files["script"])
    now = execgate.time.monotonic()
    monkeypatch.setattr(execgate.time, "monotonic", lambda: now + execgate.CHAIN_SECONDS + 1)
    assert not _exec(loop, files["interp"])
