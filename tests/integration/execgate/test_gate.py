"""The exec gate on a private tmpfs: allow, deny, copies, child-writable places, root."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import gatekit
import pytest

from agent.execgate.catalogue import scan
from agent.execgate.loop import Blocked
from agent.execgate.table import GateReason

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
]



def reported(env: Any, timeout: float = 5.0) -> list[Blocked]:
    """The gate answers an exec first and reports the block after; wait for the report."""
    deadline = time.monotonic() + timeout
    while not env.blocked and time.monotonic() < deadline:
        time.sleep(0.01)
    return env.blocked


def test_allowed_app_runs_and_blocked_app_fails_with_eperm(gate_env) -> None:
    assert gatekit.as_child([gate_env.exe("chess")]).returncode == 0
    assert gatekit.as_child([gate_env.exe("phone")]).returncode == 0
    shell = gatekit.as_child(["sh", "-c", gate_env.exe("game")])
    assert shell.returncode == 126
    assert "Operation not permitted" in shell.stderr
    with pytest.raises(PermissionError) as info:
        gatekit.as_child([gate_env.exe("game")])
    assert info.value.errno == errno.EPERM
    assert [(b.app_id, b.reason, b.uid) for b in reported(gate_env)] == [
        ("org.example.Game", "blocked", gatekit.CHILD_UID)
    ], "one report for the app, not one per attempt"


@pytest.mark.parametrize("where", ["opt", "shared"])
def test_copy_and_renamed_copy_of_blocked_app_fail_by_content_hash(gate_env, where) -> None:
    # `opt` is written by root; `shared` is a sticky world-writable dir the config missed.
    copy = gate_env.fs / where / "game"
    renamed = gate_env.fs / where / "homework-helper"
    shutil.copy2(gate_env.exe("game"), copy)
    shutil.copy2(gate_env.exe("game"), renamed)
    if where == "shared":
        os.chown(renamed, gatekit.CHILD_UID, gatekit.CHILD_UID)
    for path in (copy, renamed):
        result = gatekit.as_child(["sh", "-c", str(path)])
        assert result.returncode == 126, (path, result)
    assert {(b.app_id, b.reason) for b in reported(gate_env)} == {("org.example.Game", "blocked")}
    # A copy of an allowed app is that app: it runs.
    chess_copy = gate_env.fs / where / "chess-renamed"
    shutil.copy2(gate_env.exe("chess"), chess_copy)
    assert gatekit.as_child([str(chess_copy)]).returncode == 0


def test_unknown_binary_is_denied_and_base_helper_allowed(gate_env) -> None:
    stranger = gatekit.make_binary(gate_env.fs / "opt" / "stranger", tag="stranger")
    assert gatekit.as_child(["sh", "-c", str(stranger)]).returncode == 126
    assert gatekit.as_child([str(gate_env.fs / "base" / "helper")]).returncode == 0
    assert (None, GateReason.UNKNOWN.value) in {(b.app_id, b.reason) for b in reported(gate_env)}


def test_child_writable_place_denied_even_for_an_allowed_apps_copy(gate_env) -> None:
    home_copy = gate_env.fs / "home" / "chess"
    shutil.copy2(gate_env.exe("chess"), home_copy)
    os.chown(home_copy, gatekit.CHILD_UID, gatekit.CHILD_UID)
    result = gatekit.as_child(["sh", "-c", str(home_copy)])
    assert result.returncode == 126
    assert "Operation not permitted" in result.stderr
    assert any(b.reason == GateReason.CHILD_WRITABLE.value for b in reported(gate_env))
    script = gate_env.fs / "home" / "run.sh"
    script.write_text(f"#!/bin/sh\nexec {gate_env.exe('chess')}\n")
    script.chmod(0o755)
    assert gatekit.as_child(["sh", "-c", str(script)]).returncode == 126


def test_root_is_never_blocked(gate_env) -> None:
    for name in ("game", "chess", "phone"):
        assert gatekit.as_root([gate_env.exe(name)]).returncode == 0
    stranger = gatekit.make_binary(gate_env.fs / "home" / "stranger", tag="root-stranger")
    assert gatekit.as_root([str(stranger)]).returncode == 0
    assert gate_env.blocked == []


def test_policy_change_flips_verdicts_at_once(gate_env) -> None:
    chess = gate_env.exe("chess")
    assert gatekit.as_child([chess]).returncode == 0
    events = gate_env.gate.stats.events
    assert gatekit.as_child([chess]).returncode == 0
    assert gate_env.gate.stats.events == events, "a cached allow must not wake the gate"
    gate_env.set_policy(allowed=["org.example.Game"], blocked=["org.example.Chess"])
    assert gatekit.as_child(["sh", "-c", chess]).returncode == 126
    assert gatekit.as_child([gate_env.exe("game")]).returncode == 0
    gate_env.set_policy(allowed=["org.example.Chess"], limits_spent=["org.example.Chess"])
    assert gatekit.as_child(["sh", "-c", chess]).returncode == 126
    assert gatekit.as_child(["sh", "-c", gate_env.exe("game")]).returncode == 126  # not listed
    assert [b.reason for b in reported(gate_env) if b.app_id == "org.example.Chess"] == [
        "blocked",
        "limit_spent",
    ]


def test_modified_allowed_file_is_judged_again(gate_env) -> None:
    """No FAN_MARK_IGNORED_SURV_MODIFY: writing to a cached file drops its ignore mark."""
    chess = gate_env.exe("chess")
    assert gatekit.as_child([chess]).returncode == 0
    events = gate_env.gate.stats.events
    with open(chess, "ab") as f:
        f.write(b"\0more")
    assert gatekit.as_child([chess]).returncode == 0  # same inode: still Chess
    assert gate_env.gate.stats.events == events + 1


def test_hammer_ten_thousand_execs_all_answered(gate_env) -> None:
    """5,000 denied child execs and 5,000 uncached root execs at once: none hangs, every
    event is answered exactly once, the child is told once."""
    n = 5000
    loop = (
        'i=0; ok=0; bad=0; while [ $i -lt {n} ]; do if "{exe}" 2>/dev/null; then ok=$((ok+1)); '
        'else bad=$((bad+1)); fi; i=$((i+1)); done; echo "$ok $bad"'
    ).format(n=n, exe=gate_env.exe("game"))
    before = gate_env.gate.stats.events
    child = subprocess.Popen(
        ["sh", "-c", loop],
        user=gatekit.CHILD_UID,
        group=gatekit.CHILD_UID,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    root = subprocess.Popen(["sh", "-c", loop], stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        child_out, _ = child.communicate(timeout=240)
        root_out, _ = root.communicate(timeout=240)
    finally:
        for proc in (child, root):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert child_out.split() == ["0", str(n)]
    assert root_out.split() == [str(n), "0"]
    stats = gate_env.gate.stats
    assert stats.events - before == 2 * n
    assert stats.denied == n
    assert len(reported(gate_env)) == 1


def test_upgraded_app_keeps_its_verdict_by_path(gate_env) -> None:
    """A package upgrade renames a new file over the old: a new inode the table never saw."""
    for name, tag in (("chess", "chess-2.0"), ("game", "game-2.0")):
        new = gatekit.make_binary(gate_env.fs / "apps" / f".{name}.dpkg-new", tag=tag)
        os.rename(new, gate_env.exe(name))
    assert gatekit.as_child([gate_env.exe("chess")]).returncode == 0
    assert gatekit.as_child(["sh", "-c", gate_env.exe("game")]).returncode == 126
    assert [(b.app_id, b.reason) for b in reported(gate_env)] == [("org.example.Game", "blocked")]


def test_a_failing_report_callback_does_not_stop_the_gate(gate_env) -> None:
    def broken(_blocked) -> None:
        raise RuntimeError("the daemon's handler is broken")

    gate_env.gate.on_blocked = broken
    gate_env.gate._loop.on_blocked = broken  # the running loop's callback
    assert gatekit.as_child(["sh", "-c", gate_env.exe("game")]).returncode == 126
    assert gatekit.as_child(["sh", "-c", gate_env.exe("game")]).returncode == 126
    assert gatekit.as_child([gate_env.exe("chess")]).returncode == 0


NON_DUMPABLE_EXEC = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: /proc/PID now shows root
os.execv(sys.argv[1], [sys.argv[1]])
"""


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_non_dumpable_child_is_still_judged_as_the_child(gate_env) -> None:
    """The gate reads the thread's real uid from /proc/TID/status, not the owner of
    /proc/PID (root for a non-dumpable process)."""
    result = gatekit.as_child(["/usr/bin/python3", "-c", NON_DUMPABLE_EXEC, gate_env.exe("game")])
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr
    assert [(b.app_id, b.uid) for b in reported(gate_env)] == [("org.example.Game", gatekit.CHILD_UID)]


def test_hash_deadline_denies_the_child_and_allows_root(gate_env) -> None:
    gate_env.config = dataclasses.replace(gate_env.config, hash_deadline=0.0)
    gate_env.set_policy(allowed=["org.example.Chess"])
    copy = gate_env.fs / "opt" / "chess-copy"
    shutil.copy2(gate_env.exe("chess"), copy)
    assert gatekit.as_child(["sh", "-c", str(copy)]).returncode == 126
    assert [b.reason for b in reported(gate_env)] == [GateReason.HASH_TIMEOUT.value]
    assert gatekit.as_root([str(copy)]).returncode == 0


def _script_app(gate_env, name: str, app_id: str, shebang: str) -> Path:
    """An installed app whose program is a script starting with `#!shebang`."""
    script = gate_env.fs / "apps" / name
    script.write_text(f"#!{shebang}\nexit 0\n")
    script.chmod(0o755)
    gatekit.write_desktop(gate_env.fs / "share" / "applications", app_id, name, script)
    gate_env.apps.update(scan([str(gate_env.fs / "share" / "applications")]).apps)
    return script


def test_interpreter_runs_for_the_child_only_as_an_allowed_scripts_next_step(gate_env) -> None:
    """The kernel opens a script's `#!` interpreter for exec too, in the same execve and
    thread. An allowed script app runs (every time: the script is never cached, or the
    gate would not see the step coming); the child calling the interpreter directly, e.g.
    to run a file of its own, is denied even while the app is allowed; a blocked app's
    script does not run."""
    interp = gatekit.make_binary(gate_env.fs / "interp" / "sh", source="/bin/sh", tag="interp")
    script = _script_app(gate_env, "quiz", "org.example.Quiz", str(interp))
    assert gate_env.apps["org.example.Quiz"].interpreters == (str(interp),)
    gate_env.set_policy(allowed=["org.example.Quiz"])
    for _ in range(3):
        assert gatekit.as_child([str(script)]).returncode == 0
    assert gatekit.as_child(["sh", "-c", f'exec "{interp}" -c true']).returncode == 126
    assert gatekit.as_root([str(interp), "-c", "true"]).returncode == 0
    assert gatekit.as_child([str(script)]).returncode == 0, "root's call broke the child's chain"
    gate_env.set_policy(blocked=["org.example.Quiz"])
    assert gatekit.as_child(["sh", "-c", str(script)]).returncode == 126
    assert gatekit.as_child(["sh", "-c", f"{interp} -c true"]).returncode == 126


def test_env_shebang_chain_allows_env_then_its_target_only(gate_env) -> None:
    """`#!/usr/bin/env X`: the kernel execs env, which then execs X from the same thread.
    Both steps pass for an allowed script; neither env nor X runs for the child alone."""
    env = gatekit.make_binary(gate_env.fs / "interp" / "env", source="/usr/bin/env", tag="env")
    interp = gatekit.make_binary(gate_env.fs / "interp" / "sh", source="/bin/sh", tag="interp2")
    script = _script_app(gate_env, "story", "org.example.Story", f"{env} {interp}")
    gate_env.set_policy(allowed=["org.example.Story"])
    assert gatekit.as_child([str(script)]).returncode == 0
    assert gatekit.as_child([str(script)]).returncode == 0
    assert gatekit.as_child(["sh", "-c", f'exec "{env}" true']).returncode == 126
    assert gatekit.as_child(["sh", "-c", f'exec "{interp}" -c true']).returncode == 126


def test_flatpak_style_app_in_a_sandbox_mount_namespace_is_judged_by_inode(gate_env) -> None:
    """bwrap bind-mounts the app's files at /app in its own mount namespace: the gate sees
    a path that is not the catalogue's, so app trees and runtimes are judged by inode."""
    fs = gate_env.fs
    files = fs / "flatpak" / "app" / "org.example.Paint" / "x86_64" / "stable" / "c0ffee" / "files"
    gatekit.make_binary(files / "bin" / "paint", tag="paint")
    runtime = fs / "flatpak" / "runtime" / "org.example.Platform" / "files"
    gatekit.make_binary(runtime / "bin" / "helper", tag="platform-helper")
    desktop = fs / "flatpak" / "exports"
    desktop.mkdir(parents=True)
    (desktop / "org.example.Paint.desktop").write_text(
        "[Desktop Entry]\nName=Paint\nExec=/usr/bin/flatpak run org.example.Paint\nX-Flatpak=org.example.Paint\n"
    )
    gate_env.apps.update(scan([str(desktop)], flatpak_root=str(fs / "flatpak" / "app")).apps)
    gate_env.config = dataclasses.replace(gate_env.config, base_trees=(str(fs / "flatpak" / "runtime"),))
    for d in ("app", "usr"):
        (fs / "sandbox" / d).mkdir(parents=True)

    def in_sandbox(program: str) -> subprocess.CompletedProcess[str]:
        child = f"setpriv --reuid {gatekit.CHILD_UID} --regid {gatekit.CHILD_UID} --clear-groups"
        inner = (
            f"mount --bind {files} {fs}/sandbox/app && mount --bind {runtime} {fs}/sandbox/usr && "
            f'exec {child} sh -c "{fs}/sandbox/{program}"'
        )
        return gatekit.as_root(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner])

    gate_env.set_policy(allowed=["org.example.Paint"])
    assert in_sandbox("app/bin/paint").returncode == 0
    assert in_sandbox("usr/bin/helper").returncode == 0  # the runtime is base
    gate_env.set_policy(blocked=["org.example.Paint"])
    denied = in_sandbox("app/bin/paint")
    assert denied.returncode == 126, denied
    assert in_sandbox("usr/bin/helper").returncode == 0
    [blocked] = gate_env.blocked
    assert (blocked.app_id, blocked.reason) == ("org.example.Paint", "blocked")
    print(f"\nthe gate saw the sandboxed exec as {blocked.path!r}")


def test_a_runtimes_shell_runs_in_its_sandbox_but_not_for_the_child_on_the_host(gate_env) -> None:
    """A Flatpak runtime (a base tree) holds a shell: inside a sandbox (another mount
    namespace) it is the runtime's business; run by the child on the host it would be a
    shell in the child's base, so there it is refused."""
    fs = gate_env.fs
    runtime = fs / "flatpak" / "runtime" / "org.example.Platform" / "files"
    shell = gatekit.make_binary(runtime / "bin" / "bash", source="/bin/sh", tag="runtime-shell")
    gate_env.config = dataclasses.replace(gate_env.config, base_trees=(str(fs / "flatpak" / "runtime"),))
    gate_env.set_policy()
    (fs / "sandbox" / "usr").mkdir(parents=True)
    child = f"setpriv --reuid {gatekit.CHILD_UID} --regid {gatekit.CHILD_UID} --clear-groups"
    inner = f"mount --bind {runtime} {fs}/sandbox/usr && exec {child} {fs}/sandbox/usr/bin/bash -c 'exit 0'"
    sandboxed = gatekit.as_root(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner])
    assert sandboxed.returncode == 0, sandboxed
    on_host = gatekit.as_child(["sh", "-c", f"{shell} -c 'exit 0'"])
    assert on_host.returncode == 126, on_host
    assert gatekit.as_root([str(shell), "-c", "exit 0"]).returncode == 0
    assert [b.reason for b in gate_env.blocked] == ["outside_sandbox"]
