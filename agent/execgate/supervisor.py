"""The supervisor that owns the exec gate's fanotify group and keeps a gate process
(`agent.execgate.gate`) answering it, in JSON lines (`agent.execgate.messages`).

Fail-closed restarts (tests/integration/execgate/test_supervision.py measures them): a
fanotify group lets every pending exec through when its last fd closes, so the
supervisor keeps its own fd to the group. When the gate dies, execs wait instead; the
supervisor answers the events the dead gate had read (an in-flight ledger in shared
memory; the kernel matches answers by fd number), starts a new gate on the same group,
and the new gate reads the rest. A hung gate (no pong within `ping_timeout`) is killed
and handled the same way.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.execgate import fanotify, inflight
from agent.execgate.inflight import InFlightLedger
from agent.execgate.loop import EXEC_EVENTS, Blocked, Bridge, create_group, uid_of
from agent.execgate.messages import (
    BlockedReport,
    MessageError,
    Ping,
    Pong,
    Ready,
    SetTable,
    ToGate,
    decode_from_gate,
    encode,
)
from agent.execgate.mounts import MountFollower
from agent.execgate.table import GateTable

log = logging.getLogger(__name__)
SWEEP_FDS = 1024  # event fd numbers a dead gate may have held (its fd table's low end)


def _poll_once(fds: Sequence[int], timeout_ms: int | None) -> list[tuple[int, int]]:
    """poll(2) for input on `fds`; [] on timeout."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return poller.poll(timeout_ms)


class _LineReader:
    """Lines from the gate's stdout with a timeout (a buffered readline cannot time out)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    def readline(self, timeout: float | None) -> bytes:
        """A line with its newline; b"" at EOF or when `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if wait is not None and wait == 0.0:
                return b""
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            if not poller.poll(None if wait is None else int(wait * 1000) + 1):
                return b""
            chunk = os.read(self.fd, 1 << 16)
            if chunk:
                self.buf += chunk
            else:
                self.eof = True
        if b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            return line + b"\n"
        line, self.buf = self.buf, b""
        return line


@dataclass(frozen=True)
class GateOutage:
    """An outage starts when the gate process is gone and ends when a new one is ready.
    `seconds` is set on the end; times are time.monotonic(). `fail_open` tells whether
    the group had to be released (execs allowed unchecked) during the outage."""

    started: bool
    at: float
    cause: str
    seconds: float | None = None
    fail_open: bool = False


class GateStartError(RuntimeError):
    pass


class GateSupervisor:
    """Owns the fanotify group and keeps one gate process answering it.

    Because the supervisor holds the group too, a dead gate does not close it: execs
    wait (they are not let through) while the supervisor answers what the dead gate had
    read (from the in-flight ledger: deny for a restricted uid) and starts a new gate,
    which reads the rest. Only if the gate fails to start `max_failures` times in a row
    is the group released (the kernel then allows everything: fail-open) so the device
    does not freeze; enforcement then rests on the session lock until a gate is back.

    Callbacks run on the supervisor's watcher thread; they must not block for long (the
    daemon hands them to its loop with `call_soon_threadsafe`).
    """

    def __init__(
        self,
        marks: Sequence[str],
        table: GateTable,
        on_blocked: Callable[[Blocked], None] | None = None,
        on_outage: Callable[[GateOutage], None] | None = None,
        *,
        on_activity: Callable[[], None] | None = None,
        mark_mount: bool = False,
        ready_timeout: float = 30.0,
        ping_interval: float = 1.0,
        ping_timeout: float = 5.0,
        idle_check: float = 60.0,
        max_failures: int = 3,
        follow_mounts: bool = True,
        python: str = sys.executable,
        gate_args: Sequence[str] = (),
    ) -> None:
        self.marks = list(marks)
        self.table = table
        self.on_blocked = on_blocked
        self.on_outage = on_outage
        self.on_activity = on_activity  # execs happened (the app tracker looks then)
        self.mark_kind = fanotify.FAN_MARK_MOUNT if mark_mount else fanotify.FAN_MARK_FILESYSTEM
        self.ready_timeout = ready_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.idle_check = idle_check
        self.max_failures = max_failures
        self.python = python
        self.gate_args = list(gate_args)  # extra arguments for the first gate (tests)
        self.restarts = 0
        self.recovered: list[tuple[int, bool]] = []  # (event fd, allowed) answered for a dead gate
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: _LineReader | None = None
        self._fan_fd: int | None = None
        self._ledger_fd: int | None = None
        self._ledger: InFlightLedger | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._ping_seq = 0
        self._pong_seq = 0
        self._pong = threading.Condition()
        # stop() and _release() wake the watchdog out of its poll on the group
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._threads: list[threading.Thread] = []
        # every file system under the marks, also those mounted later (mounts.py)
        self.mounts = MountFollower(self.marks, self._mark_path) if follow_mounts else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self._ledger_fd = inflight.create()
        self._ledger = InFlightLedger(self._ledger_fd)
        self._fan_fd = create_group(self.marks, self.mark_kind)
        if self.mounts is not None:
            self.mounts.start()
        self._spawn(self.gate_args)
        if not self._ready.wait(self.ready_timeout):
            if self.mounts is not None:
                self.mounts.stop()
            self._kill()
            if self._proc is not None:
                self._proc.wait()
            self._recover_in_flight()
            self._release()
            raise GateStartError(f"exec gate did not get ready within {self.ready_timeout} s")
        for target in (self._watch, self._watchdog):
            t = threading.Thread(target=target, name=f"gate-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    def update(self, table: GateTable) -> None:
        """Send a new table; a gate that died meanwhile gets it when restarted. May block
        while a hung gate's pipe is full, until the watchdog kills it (<= ping_timeout):
        call it off the event loop (`asyncio.to_thread`)."""
        with self._lock:
            self.table = table
            self._send(SetTable(table))

    def stop(self) -> None:
        """Stop the gate (it answers what it has read), then close the group: from here
        on the kernel allows every exec (stopping the agent stops enforcement)."""
        self._stopping.set()
        self._wake_watchdog()
        with self._pong:
            self._pong.notify_all()
        with self._lock:
            proc = self._proc
            if proc and proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if proc:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
                proc.wait()
            self._recover_in_flight()
        for t in self._threads:
            t.join(timeout=10)
        if self.mounts is not None:
            self.mounts.stop()
        self._release()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._ledger is not None and self._ledger_fd is not None:
            self._ledger.close()
            os.close(self._ledger_fd)
            self._ledger = self._ledger_fd = None

    # -- internals

    def _spawn(self, extra: Sequence[str] = ()) -> None:
        if self._fan_fd is None:  # released after repeated failures: a fresh group
            self._fan_fd = create_group(self.marks, self.mark_kind)
            if self.mounts is not None:
                self.mounts.remark()
        assert self._ledger_fd is not None
        args = [self.python, "-m", "agent.execgate.gate", "--fan-fd", str(self._fan_fd)]
        args += ["--ledger-fd", str(self._ledger_fd), *extra]
        self._ready.clear()
        # The new gate's own exec waits on this group when "/" is marked: answer meanwhile.
        with Bridge(self._fan_fd, self.table, self.on_blocked):
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(self._fan_fd, self._ledger_fd),
            )
            assert proc.stdout is not None
            with self._lock:
                self._proc = proc
                self._reader = _LineReader(proc.stdout.fileno())
                self._send(SetTable(self.table))
            self._read_until_ready(proc)

    def _read_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for "ready" at most `ready_timeout` (a gate stuck before it is killed)."""
        reader = self._reader
        assert reader is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            line = reader.readline(deadline - time.monotonic())
            if not line:  # EOF or timeout
                return
            if self._handle(line):
                return

    def _handle(self, line: bytes) -> bool:
        """Dispatch one line from the gate; True if it was "ready"."""
        try:
            message = decode_from_gate(line)
        except MessageError:
            log.error("exec gate: unreadable report %r", line[:200])
            return False
        if isinstance(message, Ready):
            self._ready.set()
            return True
        if isinstance(message, Pong):
            with self._pong:
                self._pong_seq = max(self._pong_seq, message.seq)
                self._pong.notify_all()
        elif isinstance(message, BlockedReport) and self.on_blocked is not None:
            self.on_blocked(message.blocked)
        return False

    def _send(self, message: ToGate) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return
        try:
            proc.stdin.write(encode(message))
            proc.stdin.flush()
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EINVAL):
                raise

    def _recover_in_flight(self) -> None:
        """Answer the events a dead gate had read: from the ledger by uid, then a sweep
        of low fd numbers (allow) for any read in the instant before it was recorded."""
        if self._fan_fd is None or self._ledger is None:
            return
        for event_fd, tid in self._ledger.entries():
            try:
                allow = self.table.is_system(uid_of(tid))
            except OSError:
                allow = True  # the exec'ing thread is gone: nothing to protect
            with contextlib.suppress(OSError):  # ENOENT: it was answered before the death
                fanotify.respond(self._fan_fd, event_fd, allow)
                self.recovered.append((event_fd, allow))
        self._ledger.clear()
        for event_fd in range(SWEEP_FDS):
            with contextlib.suppress(OSError):
                fanotify.respond(self._fan_fd, event_fd, True)
                self.recovered.append((event_fd, True))
                log.warning("exec gate: allowed an unrecorded in-flight event (fd %d)", event_fd)

    def _release(self) -> None:
        """Close the group, so the kernel lets every exec pass unchecked.

        Closing our fd is not enough to end the group: the watchdog, asleep in poll() on
        it, holds the file until poll returns (up to `idle_check`), and meanwhile the old
        group keeps its marks with nobody reading it, so every exec it is asked about
        waits - and the next group usually gets the same fd number, so the watchdog would
        go back to sleep on the new group without ever dropping the old one. Waking the
        watchdog makes it let go now."""
        with self._lock:
            if self._fan_fd is not None:
                os.close(self._fan_fd)
                self._fan_fd = None
        self._wake_watchdog()

    def _wake_watchdog(self) -> None:
        with contextlib.suppress(OSError):  # EAGAIN: already woken; EBADF: stopped
            os.write(self._wake_w, b"x")

    def _mark_path(self, path: str) -> None:
        """Mark one more file system (or mount) in the group; nothing while it is released
        (the next group marks everything again)."""
        with self._lock:
            if self._fan_fd is not None:
                fanotify.mark(self._fan_fd, fanotify.FAN_MARK_ADD | self.mark_kind, EXEC_EVENTS, path)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc, reader = self._proc, self._reader
            assert proc is not None and reader is not None
            line = reader.readline(None)
            if line:
                self._handle(line)
                continue
            # EOF: the gate is gone (crashed, killed, or stopped by us).
            code = proc.wait()
            if self._stopping.is_set():
                return
            self._recover(f"gate exited with {code}")

    def _recover(self, cause: str) -> None:
        began = time.monotonic()
        log.error("exec gate: %s; restarting", cause)
        if self.on_outage:
            self.on_outage(GateOutage(True, began, cause))
        self._recover_in_flight()
        failures = 0
        fail_open = False
        while not self._stopping.is_set():
            self.restarts += 1
            try:
                self._spawn()
            except OSError:
                log.exception("exec gate: cannot start the gate process")
            if self._ready.is_set():
                break
            self._kill()
            if self._proc is not None:
                self._proc.wait()
            self._recover_in_flight()
            failures += 1
            if failures >= self.max_failures and self._fan_fd is not None:
                log.error("exec gate: %d failed starts; releasing the group", failures)
                self._release()  # execs now pass unchecked; the session stays locked
                fail_open = True
            self._stopping.wait(1.0)
        if self.on_outage and self._ready.is_set():
            end = time.monotonic()
            self.on_outage(GateOutage(False, end, cause, end - began, fail_open))

    def _watchdog(self) -> None:
        """Ping the gate only while it has work, and kill it if it does not answer.

        A hung gate harms only an exec waiting on it, so the watchdog sleeps in poll() on
        the group itself until an event is queued (the gate wakes for it too) and pings
        then, once per `ping_interval` at most while events keep coming or the in-flight
        ledger holds some; a gate that does not pong within `ping_timeout` is killed. An
        idle tablet's supervisor does not wake at all (it pinged every second), but for a
        look every `idle_check` seconds: a gate that read an event an instant before the
        watchdog went to sleep and then hung is found by it. Each wake-up, and the end of
        each `ping_interval` that followed one, is also `on_activity()`: the app tracker
        looks at the running processes then instead of every two seconds."""
        while not self._stopping.is_set():
            fan_fd = self._fan_fd
            if not self._ready.is_set() or fan_fd is None:
                self._stopping.wait(self.ping_interval)
                continue
            if not self._busy(fan_fd):
                self._sleep_until_work(fan_fd)
                if self._stopping.is_set():
                    return
                if not self._ready.is_set():
                    continue
            self._activity()
            proc = self._proc
            if not self._ping_answered():
                if self._stopping.is_set() or proc is not self._proc or not self._ready.is_set():
                    continue  # stopped, or the gate died and was restarted meanwhile
                log.error("exec gate: no answer for %.1f s; killing it", self.ping_timeout)
                self._kill()
                continue
            self._stopping.wait(self.ping_interval)
            self._activity()  # execs the gate drained while this thread waited

    def _activity(self) -> None:
        if self.on_activity is not None and not self._stopping.is_set():
            self.on_activity()

    def _busy(self, fan_fd: int) -> bool:
        """Events queued for the gate, or read and not yet answered."""
        queued = bool(_poll_once([fan_fd], 0))
        return queued or bool(self._ledger is not None and self._ledger.entries())

    def _sleep_until_work(self, fan_fd: int) -> None:
        with contextlib.suppress(OSError):
            _poll_once([fan_fd, self._wake_r], int(self.idle_check * 1000))
        with contextlib.suppress(OSError):  # BlockingIOError: nobody woke us
            while os.read(self._wake_r, 64):
                pass

    def _ping_answered(self) -> bool:
        """False if the gate did not pong within `ping_timeout`, or the ping could not even
        be sent: a hung gate's stdin fills up, and `update` may be blocked writing a table
        into it while holding the lock. The watchdog never waits on that lock or that pipe
        for longer than the timeout (killing the gate is what unblocks `update`)."""
        deadline = time.monotonic() + self.ping_timeout
        if not self._lock.acquire(timeout=self.ping_timeout):
            return False
        try:
            if not self._stdin_has_room(max(0.0, deadline - time.monotonic())):
                return False
            self._ping_seq += 1
            seq = self._ping_seq
            self._send(Ping(seq))
        finally:
            self._lock.release()
        with self._pong:
            return self._pong.wait_for(lambda: self._pong_seq >= seq or self._stopping.is_set(),
                                       max(0.0, deadline - time.monotonic()))

    def _stdin_has_room(self, timeout: float) -> bool:
        """The gate's stdin pipe takes a ping without blocking (POLLOUT: PIPE_BUF free)
        within `timeout` seconds: a gate that reads its stdin drains a table in that time."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return True  # nothing to write to: _send does nothing
        return bool(select.select([], [proc.stdin.fileno()], [], timeout)[1])

    def _kill(self) -> None:
        proc = self._proc
        if proc and proc.poll() is None:
            proc.kill()

