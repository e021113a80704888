"""The exec gate: answers every FAN_OPEN_EXEC_PERM event on the marked filesystems.

It also reads the FAN_OPEN_EXEC notification of every exec (queued after the file opened,
so before the dynamic loader's permission event of the same execve, and never suppressed
by the cache's ignore marks): a dynamic program's notification arms its thread for one
loader open, which is how a loader run as a program is told from a program's loader.

The loop never waits on the asyncio loop or on anything but the fanotify fd: it reads the
current `GateTable` by reference (swapped whole by `update`), answers each event in a
`finally`, caches allowed files with ignore marks, and hands "blocked" facts to a
callback that must not block (the daemon passes `loop.call_soon_threadsafe`-style
callables). Blocks are deduplicated per app and reason until the table changes, so the
child is told once per app, not once per exec attempt.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.execgate import fanotify
from agent.execgate.elf import program_interpreter
from agent.execgate.inflight import InFlightLedger
from agent.execgate.table import GateReason, GateTable, Judgement, hash_fd, judge

log = logging.getLogger(__name__)

GROUP_FLAGS = (
    fanotify.FAN_CLASS_CONTENT
    | fanotify.FAN_CLOEXEC
    | fanotify.FAN_NONBLOCK
    | fanotify.FAN_REPORT_TID  # the pid is the exec'ing thread: its own credentials
    | fanotify.FAN_UNLIMITED_QUEUE
    | fanotify.FAN_UNLIMITED_MARKS
)


def forbid_vfork() -> None:
    """Make this process spawn children with fork(), never vfork() or posix_spawn().

    A thread spawning with vfork is suspended until the child's exec is done, and
    CPython before 3.11.6 (bookworm ships 3.11.2) keeps the GIL meanwhile (cpython
    gh-104372). When this same process answers that exec's fanotify event (a `Bridge` or an
    `ExecGate` thread), the answering thread needs the GIL: every exec on the marked file
    system then waits forever. Seen in the QEMU image with "/" marked: the supervisor's
    thread sat in vfork while the bridge waited for the GIL. With fork() the parent returns
    at once and waits for the exec's outcome in a read() that releases the GIL.
    """
    subprocess._USE_VFORK = False  # type: ignore[misc]  # documented escape hatch
    subprocess._USE_POSIX_SPAWN = False  # type: ignore[misc]


MAX_CHAINS = 4096  # scripts whose interpreter step is pending (bounded: see GateLoop)
CHAIN_SECONDS = 2.0  # an interpreter step comes within one execve (env: one more)


@dataclass(frozen=True)
class Blocked:
    """An exec the gate denied (first of its kind since the table changed)."""

    app_id: str | None
    reason: str
    path: str
    uid: int


@dataclass(slots=True)
class GateStats:
    """What the gate did since it started (tests and benchmarks read it)."""

    events: int = 0
    allowed: int = 0
    denied: int = 0
    cached: int = 0
    errors: int = 0


def uid_of(tid: int) -> int:
    """The real uid of a thread (credentials of the exec'ing thread, not the dumpable-
    dependent owner of /proc/PID). A setuid program run by the child keeps the child's
    real uid, so it is still judged as the child."""
    with open(f"/proc/{tid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                return int(line.split()[1])
    raise OSError(f"/proc/{tid}/status has no Uid line")


EXEC_EVENTS = fanotify.FAN_OPEN_EXEC_PERM | fanotify.FAN_OPEN_EXEC  # see the module's docstring


def create_group(paths: Sequence[str], mark_kind: int = fanotify.FAN_MARK_FILESYSTEM) -> int:
    """A fanotify group marking each path's filesystem (or mount) for exec permission."""
    fan_fd = fanotify.init(GROUP_FLAGS)
    try:
        for path in paths:
            fanotify.mark(fan_fd, fanotify.FAN_MARK_ADD | mark_kind, EXEC_EVENTS, path)
    except OSError:
        os.close(fan_fd)
        raise
    return fan_fd


class GateLoop:
    """The event loop proper, shared by the thread runner and the gate process."""

    def __init__(
        self,
        fan_fd: int,
        table: GateTable,
        on_blocked: Callable[[Blocked], None] | None = None,
        *,
        cache: bool = True,
        ledger: InFlightLedger | None = None,
        after_read: Callable[[], None] | None = None,
    ) -> None:
        self.fan_fd = fan_fd
        self.ledger = ledger  # in-flight events, for the supervisor after a crash
        self.after_read = after_read  # a test seam: runs between read and answers
        self.cache = cache  # False only to measure the uncached path (tests/bench)
        self.table = table
        self.on_blocked = on_blocked
        self.stats = GateStats()
        self._told: set[tuple[str | None, str]] = set()
        self._told_generation = table.generation
        # tid -> (the interpreter steps its exec of an allowed script still has to pass,
        # until when, the script and all its steps): the loader's opens in between leave
        # it; any other file's open in that thread drops it; it lapses if the exec failed
        self._chains: dict[int, tuple[tuple[tuple[int, int], ...], float, frozenset[tuple[int, int]]]] = {}
        # tid -> until when: its exec of a dynamic program passed and opened, so its next
        # loader open is that program's second step (consumed by it; a later exec's
        # notification replaces or drops it)
        self._dynamic: dict[int, float] = {}
        self._is_dynamic: dict[tuple[int, int, int, int], bool] = {}  # (dev, ino, mtime, size)
        # The host's mount namespace: the gate's own (the agent's unit makes none of its own)
        self._mount_ns = os.stat("/proc/self/ns/mnt").st_ino

    def swap(self, table: GateTable) -> None:
        """Install a new table and drop the kernel's cached allows. Safe from any thread:
        a mark added concurrently under the old table is removed by `_cache` itself."""
        self.table = table
        fanotify.flush_inode_marks(self.fan_fd)

    def handle_batch(self) -> int:
        """Read one batch and answer every permission event in it; returns its size.

        Each event is answered and its fd closed in a `finally`; if anything escapes,
        the rest of the batch is still answered (allowed, as the kernel would on close)."""
        events = fanotify.read_events(self.fan_fd, 16 * 1024)
        if not events:
            return 0
        if self.ledger is not None:
            self.ledger.record((e.fd, e.pid) for e in events if e.fd >= 0 and e.is_permission)
        if self.after_read is not None:
            self.after_read()
        answered = 0
        try:
            for i, event in enumerate(events):
                try:
                    blocked = self._answer(event)
                finally:
                    answered = i + 1  # `_answer` answers and closes its event in any case
                if blocked is not None:
                    self._report(blocked)
        finally:
            for event in events[answered:]:
                _answer_quietly(self.fan_fd, event)
            if self.ledger is not None:
                self.ledger.clear()
        return len(events)

    def _answer(self, event: fanotify.FanEvent) -> Blocked | None:
        if event.fd < 0:  # queue overflow: nothing to answer
            return None
        allow, blocked = True, None
        try:
            if event.is_permission:
                allow, blocked = self._decide(event.fd, event.pid)
            elif event.mask & fanotify.FAN_OPEN_EXEC:
                self._opened_for_exec(event.fd, event.pid)
        finally:
            try:
                if event.is_permission:
                    fanotify.respond(self.fan_fd, event.fd, allow)
            finally:
                os.close(event.fd)
        return blocked

    def _opened_for_exec(self, fd: int, tid: int) -> None:
        """A file opened for exec by `tid` (after its permission event, or cached): arm the
        thread for one loader open if it is a dynamic program, else disarm it."""
        try:
            st = os.fstat(fd)
        except OSError as exc:
            self._disarm(tid, exc)
            return
        key = (st.st_dev, st.st_ino)
        if key in self.table.loaders:  # the loader opened: this execve's step is done
            self._dynamic.pop(tid, None)
            return
        chain = self._chains.get(tid)
        if chain is not None and key not in chain[2]:  # another exec: the script's is over
            del self._chains[tid]
        self._arm(fd, st, tid)

    def _arm(self, fd: int, st: os.stat_result, tid: int) -> None:
        """Arm `tid` for one loader open if the file open on `fd` is a dynamic program
        that passed (from its notification, or from its allow: on kernels where an
        fexecve sends no notification, an uncached program still arms); else disarm."""
        ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        dynamic = self._is_dynamic.get(ident)
        if dynamic is None:
            try:
                dynamic = program_interpreter(fd) is not None
            except OSError as exc:
                self._disarm(tid, exc)
                return
            if len(self._is_dynamic) >= MAX_CHAINS:
                self._is_dynamic.clear()
            self._is_dynamic[ident] = dynamic
        if not dynamic:
            self._dynamic.pop(tid, None)
            return
        if len(self._dynamic) >= MAX_CHAINS:  # threads that died between the two opens
            self._dynamic.clear()
        self._dynamic[tid] = time.monotonic() + CHAIN_SECONDS

    def _disarm(self, tid: int, exc: OSError) -> None:
        """The exec'd file could not be read: the child's loader step is then denied."""
        log.warning("exec gate: cannot read an exec'd file of tid %d: %s", tid, exc)
        self._dynamic.pop(tid, None)

    def _loader_step(self, tid: int) -> bool:
        """Consume `tid`'s arm: True if its dynamic program opened a moment ago."""
        until = self._dynamic.pop(tid, None)
        return until is not None and time.monotonic() <= until

    def _decide(self, fd: int, tid: int) -> tuple[bool, Blocked | None]:
        table = self.table
        stats = self.stats
        stats.events += 1
        uid = -1
        key: tuple[int, int] | None = None
        st: os.stat_result | None = None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            pending = self._chains.get(tid)
            if pending is not None and pending[0][0] == key and time.monotonic() <= pending[1]:
                # The `#!` interpreter (or env's target) of the script this thread's exec
                # passed a moment ago: allowed for this step only, never cached.
                steps, until, own = pending
                if len(steps) > 1:
                    self._chains[tid] = (steps[1:], until, own)
                else:
                    del self._chains[tid]
                stats.allowed += 1
                self._arm(fd, st, tid)  # a dynamic interpreter: its loader is next
                return True, None
            if pending is not None and key not in table.loaders:  # a different exec
                del self._chains[tid]
            rule = table.by_inode.get(key)
            loader = key in table.loaders
            if loader or rule is None or not rule.allowed or rule.sandbox_only:
                uid = uid_of(tid)  # known-allowed files need no uid
            config = table.config
            verdict = judge(
                table,
                uid,
                key,
                lambda: os.readlink(f"/proc/self/fd/{fd}"),
                lambda: hash_fd(fd, config.hash_size_cap, config.hash_deadline),
                loader_step=loader and self._loader_step(tid),
                in_sandbox=lambda: os.stat(f"/proc/{tid}/ns/mnt").st_ino != self._mount_ns,
            )
        except Exception:  # logged, counted, and answered below
            # The exec'ing thread vanished, /proc failed, or a bug: closed for the child only.
            stats.errors += 1
            log.exception("exec gate: event for tid %d", tid)
            allow = uid != -1 and table.is_system(uid)
            verdict = Judgement(allow, False, None, None if allow else GateReason.ERROR.value)
        if verdict.allow:
            stats.allowed += 1
            if st is not None and key not in table.loaders:
                self._arm(fd, st, tid)
            chain = table.script_chains.get(key) if key is not None else None
            if chain is not None and key is not None:  # its interpreter next: never cache the script
                if len(self._chains) >= MAX_CHAINS:  # execs that failed after the script
                    self._chains.clear()
                self._chains[tid] = (chain, time.monotonic() + CHAIN_SECONDS, frozenset((key, *chain)))
            elif verdict.cache and self.cache:
                self._cache(fd, table)
            return True, None
        stats.denied += 1
        path = _path_of(fd)
        return False, Blocked(verdict.app_id, verdict.reason or GateReason.UNKNOWN.value, path, uid)

    def _cache(self, fd: int, table: GateTable) -> None:
        try:
            fanotify.ignore_exec(self.fan_fd, fd)
            if self.table is not table:  # swapped while we decided: this allow is stale
                fanotify.unignore_exec(self.fan_fd, fd)
            else:
                self.stats.cached += 1
        except OSError as exc:
            log.warning("exec gate: cannot cache verdict: %s", exc)

    def _report(self, blocked: Blocked) -> None:
        if self.on_blocked is None:
            return
        generation = self.table.generation
        if generation != self._told_generation:
            self._told.clear()
            self._told_generation = generation
        key = (blocked.app_id or blocked.path, blocked.reason)
        if key in self._told:
            return
        self._told.add(key)
        try:
            self.on_blocked(blocked)
        except Exception:  # foreign code must not stop the gate; the exec is already answered
            log.exception("exec gate: the blocked-report callback failed")


def _answer_quietly(fan_fd: int, event: fanotify.FanEvent) -> None:
    """Last resort for events left in a batch after a failure: allow, close, never raise."""
    if event.fd < 0:
        return
    try:
        if event.is_permission:
            fanotify.respond(fan_fd, event.fd, True)
    except OSError:
        log.exception("exec gate: cannot answer event fd %d", event.fd)
    finally:
        os.close(event.fd)


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def serve_until(loop: GateLoop, wake_fd: int) -> None:
    """Answer the group's events until `wake_fd` becomes readable."""
    poller = select.poll()
    poller.register(loop.fan_fd, select.POLLIN)
    poller.register(wake_fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if loop.fan_fd in ready:
            while loop.handle_batch():
                pass
        if wake_fd in ready:
            return


class Bridge:
    """Answers a group's events in-process for a while, with the same table and judge.

    A gate process is started by exec'ing the interpreter; with "/" marked, that exec (and
    every other exec on the system) raises a permission event on a group nobody reads yet,
    so the gate would wait for itself forever. The supervisor runs a Bridge while a gate
    process starts; events are answered by whichever reads them first.
    """

    def __init__(self, fan_fd: int, table: GateTable, on_blocked: Callable[[Blocked], None] | None) -> None:
        self._loop = GateLoop(fan_fd, table, on_blocked, cache=False)
        self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=serve_until, args=(self._loop, self._wake[0]),
                                        name="exec-gate-bridge", daemon=True)

    def __enter__(self) -> Bridge:
        forbid_vfork()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        os.write(self._wake[1], b"x")
        self._thread.join(timeout=10)
        for fd in self._wake:
            os.close(fd)


@dataclass
class ExecGate:
    """Runs a GateLoop in its own thread over a group marking `paths`.

    `start()` marks and starts; `update(table)` swaps verdicts at once; `stop()` answers
    what is pending, closes the group (the kernel then allows anything still queued).
    """

    paths: Sequence[str]
    table: GateTable
    on_blocked: Callable[[Blocked], None] | None = None
    mark_kind: int = fanotify.FAN_MARK_FILESYSTEM
    cache: bool = True
    _loop: GateLoop | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _wake: tuple[int, int] | None = field(default=None, init=False)

    def start(self) -> None:
        forbid_vfork()
        fan_fd = create_group(self.paths, self.mark_kind)
        self._loop = GateLoop(fan_fd, self.table, self.on_blocked, cache=self.cache)
        self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="exec-gate", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> GateStats:
        assert self._loop is not None, "gate not started"
        return self._loop.stats

    def update(self, table: GateTable) -> None:
        self.table = table
        if self._loop is not None:
            self._loop.swap(table)

    def _run(self) -> None:
        assert self._loop is not None and self._wake is not None
        serve_until(self._loop, self._wake[0])

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._wake is None:
            return
        os.write(self._wake[1], b"x")
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("exec gate thread did not stop")
        while self._loop.handle_batch():  # answer anything that arrived meanwhile
            pass
        os.close(self._loop.fan_fd)
        for fd in self._wake:
            os.close(fd)
        self._thread = None
        self._wake = None
