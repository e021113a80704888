"""The verdict rule, table building, bounded hashing, and the JSON form for the process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from agent.core.decision import AppAccess
from agent.core.policy import AppDefault, AppRules
from agent.execgate.catalogue import AppInfo
from agent.execgate.table import (
    FileRule,
    GateConfig,
    GateTable,
    Judgement,
    build_table,
    hash_fd,
    judge,
    table_from_json,
    table_to_json,
)

CHILD = 1000
CONFIG = GateConfig(
    base_prefixes=("/usr/libexec/",),
    child_writable=("/home/", "/tmp/"),
    exempt_uids=frozenset({1001}),
)
GAME = FileRule("org.example.Game", False, "blocked")
CHESS = FileRule("org.example.Chess", True)
TABLE = GateTable(
    1,
    CONFIG,
    by_inode={(1, 10): GAME, (1, 11): CHESS},
    by_hash={"h-game": GAME, "h-chess": CHESS},
    by_path={"/usr/bin/game": GAME, "/usr/bin/chess": CHESS},
    app_prefixes=(
        (
            "/var/lib/flatpak/app/org.example.Paint/",
            FileRule("org.example.Paint", False, "not_allowed"),
        ),
    ),
    script_chains={(1, 12): ((1, 20),), (1, 13): ((1, 21), (1, 20))},
    loaders=frozenset({(1, 30)}),
)


def _judge(uid: int, key: tuple[int, int], path: str = "/x", digest: str | None = None):
    def no_hash() -> str | None:
        if digest == "timeout":
            raise TimeoutError
        return digest

    return judge(TABLE, uid, key, lambda: path, no_hash)


@pytest.mark.parametrize(
    ("uid", "key", "path", "digest", "allow", "cache", "app", "reason"),
    [
        (CHILD, (1, 11), "/usr/bin/chess", None, True, True, "org.example.Chess", None),
        (0, (1, 11), "/usr/bin/chess", None, True, True, "org.example.Chess", None),
        (CHILD, (1, 10), "/usr/bin/game", None, False, False, "org.example.Game", "blocked"),
        (0, (1, 10), "/usr/bin/game", None, True, False, "org.example.Game", None),
        (999, (1, 99), "/home/c/x", None, True, False, None, None),
        (65534, (1, 10), "/usr/bin/game", None, True, False, "org.example.Game", None),
        (61184, (1, 99), "/home/c/x", None, True, False, None, None),
        (1001, (1, 10), "/usr/bin/game", None, True, False, "org.example.Game", None),
        (CHILD, (1, 99), "/home/c/chess", "h-chess", False, False, None, "child_writable"),
        (CHILD, (1, 99), "/tmp/x", None, False, False, None, "child_writable"),
        (CHILD, (1, 99), "/opt/renamed", "h-game", False, False, "org.example.Game", "blocked"),
        (CHILD, (1, 99), "/opt/chess2", "h-chess", True, True, "org.example.Chess", None),
        (CHILD, (1, 99), "/usr/libexec/helper", None, True, True, None, None),
        (CHILD, (1, 99), "/opt/stranger", "h-other", False, False, None, "unknown"),
        (CHILD, (1, 98), "/usr/bin/chess", None, True, True, "org.example.Chess", None),
        (CHILD, (1, 98), "/usr/bin/game", None, False, False, "org.example.Game", "blocked"),
        (CHILD, (1, 99), "/opt/huge", None, False, False, None, "unknown"),
        (CHILD, (1, 99), "/opt/slow", "timeout", False, False, None, "hash_timeout"),
        (
            CHILD,
            (1, 99),
            "/var/lib/flatpak/app/org.example.Paint/x/bin/paint",
            None,
            False,
            False,
            "org.example.Paint",
            "not_allowed",
        ),
    ],
)
def test_judge(uid, key, path, digest, allow, cache, app, reason) -> None:
    verdict = _judge(uid, key, path, digest)
    assert (verdict.allow, verdict.cache, verdict.app_id, verdict.reason) == (
        allow,
        cache,
        app,
        reason,
    )


def test_system_uid_and_known_allowed_file_never_ask_for_path_or_hash() -> None:
    def boom() -> str:
        raise AssertionError("must not be called")

    assert judge(TABLE, 0, (1, 99), boom, boom).allow
    assert judge(TABLE, CHILD, (1, 11), boom, boom).allow


def _access(**kw: object) -> AppAccess:
    rules = AppRules(
        default=AppDefault.DENY,
        allowed=frozenset(kw.get("allowed", ())),  # type: ignore[arg-type]
        allowed_categories=frozenset(),
        blocked=frozenset(kw.get("blocked", ())),  # type: ignore[arg-type]
        blocked_categories=frozenset(),
        always_allowed=frozenset(),
        always_allowed_categories=frozenset(),
        education_categories=frozenset(),
        limits_minutes={},
        categories={},
        payers=frozenset(),
    )
    return AppAccess(rules, False, False, True, frozenset(), frozenset())


def test_build_table_merges_shared_files_and_lets_base_win(tmp_path: Path) -> None:
    shared = tmp_path / "launcher"
    shared.write_bytes(b"launcher")
    own = tmp_path / "game"
    own.write_bytes(b"game")
    apps = {
        "a": AppInfo("a", "A", frozenset(), (str(shared),), frozenset({"h1"})),
        "b": AppInfo("b", "B", frozenset(), (str(shared), str(own)), frozenset({"h1", "h2"})),
        "s": AppInfo("s", "S", frozenset(), (str(tmp_path / "gone"),), frozenset(), needed_by_session=True),
    }
    table = build_table(apps, _access(allowed=["a"], blocked=["b"]), CONFIG, 7)
    key = lambda p: (os.stat(p).st_dev, os.stat(p).st_ino)  # noqa: E731
    assert table.by_inode[key(shared)] == FileRule("a", True)
    assert table.by_inode[key(own)] == FileRule("b", False, "blocked")
    assert table.by_hash["h1"].allowed and not table.by_hash["h2"].allowed
    assert table.generation == 7
    with_base = build_table(apps, _access(blocked=["a", "b"]), GateConfig(base_paths=(str(own),)), 8)
    assert with_base.by_inode[key(own)] == FileRule(None, True)


def test_hash_fd_is_bounded_by_size_and_deadline(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert hash_fd(fd, 1 << 30, 10.0, chunk=1 << 20) == hashlib.sha256(data).hexdigest()
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # pread: the exec's file offset untouched
        assert hash_fd(fd, 1 << 20, 10.0) is None
        with pytest.raises(TimeoutError, match="longer than"):
            hash_fd(fd, 1 << 30, -1.0, chunk=1 << 20)
    finally:
        os.close(fd)


def test_table_json_round_trip() -> None:
    assert table_from_json(table_to_json(TABLE)) == TABLE


@pytest.mark.parametrize(
    ("uid", "step", "allow", "reason"),
    [
        (CHILD, False, False, "loader_run"),  # `ld-linux.so /usr/bin/game`
        (CHILD, True, True, None),  # a dynamic program's second step
        (0, False, True, None),  # root may run it; never cached either way
    ],
)
def test_the_loader_is_judged_by_the_step_it_is(uid: int, step: bool, allow: bool, reason: str | None) -> None:
    verdict = judge(TABLE, uid, (1, 30), lambda: "/usr/lib/ld-linux.so.2", lambda: None, loader_step=step)
    assert (verdict.allow, verdict.cache, verdict.reason) == (allow, False, reason)


def test_a_loader_listed_as_base_or_found_in_a_base_tree_is_still_a_loader(tmp_path: Path) -> None:
    tree = tmp_path / "runtime" / "files" / "lib"
    tree.mkdir(parents=True)
    for name in ("ld-linux-aarch64.so.1", "libc.so.6", "helper"):
        (tree / name).write_bytes(b"x")
        (tree / name).chmod(0o755)
    host = tmp_path / "ld-linux-x86-64.so.2"
    host.write_bytes(b"y")
    config = GateConfig(base_paths=(str(host),), base_trees=(str(tmp_path / "runtime"),), loaders=(str(host),))
    table = build_table({}, _access(), config, 1)
    key = lambda p: (os.stat(p).st_dev, os.stat(p).st_ino)  # noqa: E731
    assert table.loaders == {key(host), key(tree / "ld-linux-aarch64.so.1")}
    assert key(host) not in table.by_inode and key(tree / "helper") in table.by_inode


def test_a_base_trees_shell_runs_for_the_child_only_inside_a_sandbox(tmp_path: Path) -> None:
    """A Flatpak runtime holds bash: base by inode for its sandboxes, but on the host it
    would be a shell in the child's base (agent.execgate.base), so it is sandbox-only."""
    tree = tmp_path / "runtime" / "files" / "bin"
    tree.mkdir(parents=True)
    for name in ("bash", "helper"):
        (tree / name).write_bytes(name.encode())
        (tree / name).chmod(0o755)
    table = build_table({}, _access(), GateConfig(base_trees=(str(tmp_path / "runtime"),)), 1)
    st = os.stat(tree / "bash")
    bash = (st.st_dev, st.st_ino)
    verdict = lambda uid, inside: judge(table, uid, bash, lambda: "/x", lambda: None,  # noqa: E731
                                        in_sandbox=lambda: inside)
    assert (verdict(CHILD, False).allow, verdict(CHILD, False).reason) == (False, "outside_sandbox")
    assert verdict(CHILD, True) == Judgement(True, False)  # allowed, never cached
    assert verdict(0, False) == Judgement(True, False)
    st = os.stat(tree / "helper")
    assert table.by_inode[(st.st_dev, st.st_ino)] == FileRule(None, True)
    assert table_from_json(table_to_json(table)) == table
