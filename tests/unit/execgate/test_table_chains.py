"""The interpreter chain of an allowed script, step by step through `GateLoop._decide`
with real files (no fanotify group: the loop only fstat's the event's fd here). This
process stands in for the child (its uid is made restricted). Then the loader's step: a
dynamic program's open-for-exec notification (or its allow) arms its thread for exactly
one loader open; a static program, a script, the loader itself, or nothing at all arms
nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.decision import AppAccess
from agent.core.policy import AppDefault, AppRules
from agent.execgate import fanotify
from agent.execgate import loop as execgate
from agent.execgate.elf import program_interpreter
from agent.execgate.loop import GateLoop
from agent.execgate.table import GateConfig, build_table, loader_paths

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


def child_loop(base_paths: tuple[str, ...], loaders: tuple[str, ...]) -> GateLoop:
    """A loop (no group) that judges this process as the child, with an all-deny policy."""
    rules = AppRules(AppDefault.DENY, frozenset(), frozenset(), frozenset(), frozenset(), frozenset(),
                     frozenset(), frozenset(), {}, {}, frozenset())
    access = AppAccess(rules, False, False, True, frozenset(), frozenset())
    config = GateConfig(also_restricted=frozenset({os.getuid()}), restricted_uids=(-2, -2),
                        base_paths=base_paths, loaders=loaders)
    return GateLoop(-1, build_table({}, access, config, 1), cache=False)


@pytest.fixture
def loop(files: dict[str, Path]) -> Iterator[GateLoop]:
    yield child_loop((str(files["script"]),), (str(files["loader"]),))


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
    """The loader's open (its own step, judged apart) comes between env's and env's target's."""
    assert _exec(loop, files["script"])
    _exec(loop, files["loader"])
    assert _exec(loop, files["interp"])


@pytest.mark.parametrize("how", ["judged", "cached"])
def test_another_exec_in_the_thread_ends_the_chain(loop: GateLoop, files: dict[str, Path], how: str) -> None:
    """The script's exec failed after it passed, and the thread exec'd something else
    (judged, or cached so only its notification is seen): the interpreter is not armed."""
    assert _exec(loop, files["script"])
    if how == "judged":
        assert not _exec(loop, files["other"])
    else:
        fd = os.open(files["other"], os.O_RDONLY)
        loop._answer(fanotify.FanEvent(fanotify.FAN_OPEN_EXEC, fd, TID))  # closes fd
    assert not _exec(loop, files["interp"])


def test_a_chain_lapses_when_the_exec_failed_midway(
        loop: GateLoop, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exec(loop, files["script"])
    now = execgate.time.monotonic()
    monkeypatch.setattr(execgate.time, "monotonic", lambda: now + execgate.CHAIN_SECONDS + 1)
    assert not _exec(loop, files["interp"])


STATIC = "/sbin/ldconfig"  # glibc's ldconfig is static on Debian


@pytest.fixture
def elf_files(tmp_path: Path) -> dict[str, Path]:
    out = {"loader": tmp_path / "ld-linux.so", "dynamic": tmp_path / "dynamic", "static": tmp_path / "static"}
    shutil.copyfile(loader_paths()[0], out["loader"])
    shutil.copyfile("/bin/true", out["dynamic"])
    shutil.copyfile(STATIC, out["static"])
    out["script"] = tmp_path / "script"
    out["script"].write_text("#!/bin/sh\nexit 0\n")
    return out


@pytest.fixture
def elf_loop(elf_files: dict[str, Path]) -> Iterator[GateLoop]:
    yield child_loop(tuple(str(p) for p in elf_files.values()), (str(elf_files["loader"]),))


def _opened(loop: GateLoop, path: Path) -> None:
    """The FAN_OPEN_EXEC notification of `path` (the file passed or was cached)."""
    fd = os.open(path, os.O_RDONLY)
    event = fanotify.FanEvent(fanotify.FAN_OPEN_EXEC, fd, TID)
    assert loop._answer(event) is None  # closes fd


def _loader(loop: GateLoop, files: dict[str, Path]) -> bool:
    return _exec(loop, files["loader"])


def test_fixture_files_are_what_they_claim(elf_files: dict[str, Path]) -> None:
    def interp(p: Path) -> str | None:
        fd = os.open(p, os.O_RDONLY)
        try:
            return program_interpreter(fd)
        finally:
            os.close(fd)

    assert interp(elf_files["dynamic"]) is not None
    assert interp(elf_files["static"]) is None and interp(elf_files["script"]) is None


def test_a_dynamic_programs_open_arms_one_loader_open(elf_loop: GateLoop, elf_files: dict[str, Path]) -> None:
    assert not _loader(elf_loop, elf_files), "the loader ran as a program"
    _opened(elf_loop, elf_files["dynamic"])
    assert _loader(elf_loop, elf_files)
    assert not _loader(elf_loop, elf_files), "one program let the loader run twice"


@pytest.mark.parametrize("first", ["static", "script", "loader"])
def test_nothing_else_arms_the_loader(elf_loop: GateLoop, elf_files: dict[str, Path], first: str) -> None:
    """A static program that execs the loader next, a script, the loader's own open."""
    _opened(elf_loop, elf_files["dynamic"])
    _opened(elf_loop, elf_files[first])  # a later exec in the same thread replaces the arm
    assert not _loader(elf_loop, elf_files)


def test_the_arm_lapses(elf_loop: GateLoop, elf_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _opened(elf_loop, elf_files["dynamic"])
    now = execgate.time.monotonic()
    monkeypatch.setattr(execgate.time, "monotonic", lambda: now + execgate.CHAIN_SECONDS + 1)
    assert not _loader(elf_loop, elf_files)


def test_an_allowed_dynamic_programs_permission_event_arms_too(elf_loop: GateLoop, elf_files: dict[str, Path]) -> None:
    """Where an fexecve sends no notification, the program's own (uncached) event arms."""
    assert _exec(elf_loop, elf_files["dynamic"])
    assert _loader(elf_loop, elf_files)
    assert not _loader(elf_loop, elf_files)
