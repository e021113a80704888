"""The exec gate in its own process, and the supervisor that restarts it at once.

Why a process: a crash or a hang of the gate must not take the daemon with it, and the
daemon's asyncio loop must never sit in the path of an exec. The gate process talks JSON
lines: stdin brings tables and pings, stdout carries "ready", "blocked" and "pong".
It never blocks on stdout (a full pipe drops reports, never an answer).

What happens when it dies (tests/integration/execgate/test_supervision.py measures it):
the kernel closes its fanotify group and lets every pending exec through (fail-open,
within milliseconds); the supervisor sees EOF at once, reports an outage (the daemon
locks the session), starts a new gate, and reports the end when the new gate has marked
its filesystems and says "ready". A hung gate (no pong within `ping_timeout`) is killed
and handled the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent.os import fanotify
from agent.os.execgate import Blocked, GateLoop, create_group
from agent.os.gatetable import GateTable, table_from_json, table_to_json

log = logging.getLogger(__name__)
MAX_LINE = 4000  # < PIPE_BUF: a non-blocking write of a line is all or nothing


# ---------------------------------------------------------------- the gate process


class _Reporter:
    """Non-blocking JSON-line writer: drops a line rather than wait on the supervisor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0
        os.set_blocking(fd, False)

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")).encode()[:MAX_LINE] + b"\n"
        try:
            os.write(self.fd, line)
        except BlockingIOError:
            self.dropped += 1


def _first_line(fd: int) -> tuple[bytes, bytes]:
    """Read up to the first newline from a raw fd (no buffered reader to lose data)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"", b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def serve(marks: Sequence[str], mark_kind: int, control_fd: int, out_fd: int) -> int:
    """Run the gate until `control_fd` reaches EOF (the supervisor closed it or died).
    The first control line must be a table."""
    first, pending = _first_line(control_fd)
    if not first:
        return 0
    table = table_from_json(json.loads(first)["table"])
    reporter = _Reporter(out_fd)
    fan_fd = create_group(marks, mark_kind)
    loop = GateLoop(fan_fd, table, lambda b: reporter.send({"blocked": asdict(b)}))
    reporter.send({"ready": table.generation, "pid": os.getpid()})
    os.set_blocking(control_fd, False)
    poller = select.poll()
    poller.register(fan_fd, select.POLLIN)
    poller.register(control_fd, select.POLLIN)
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == fan_fd:
                    while loop.handle_batch():
                        pass
                    continue
                try:
                    chunk = os.read(control_fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    return 0
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    if "table" in message:
                        loop.swap(table_from_json(message["table"]))
                    elif "ping" in message:
                        reporter.send({"pong": message["ping"], "events": loop.stats.events})
    finally:
        while loop.handle_batch():
            pass
        os.close(fan_fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.os.gateproc")
    parser.add_argument("--mark", action="append", required=True, help="path whose fs to gate")
    parser.add_argument("--mount", action="store_true", help="mark the mount, not the fs")
    args = parser.parse_args(argv)
    kind = fanotify.FAN_MARK_MOUNT if args.mount else fanotify.FAN_MARK_FILESYSTEM
    # The supervisor's death closes stdin: EOF ends the gate (no PDEATHSIG, which follows
    # the spawning *thread*, not the process).
    return serve(args.mark, kind, sys.stdin.fileno(), sys.stdout.fileno())


# ---------------------------------------------------------------- the supervisor


@dataclass(frozen=True)
class GateOutage:
    """An outage starts when the gate process is gone and ends when a new one is ready.
    `seconds` is set on the end; times are time.monotonic()."""

    started: bool
    at: float
    cause: str
    seconds: float | None = None


class GateStartError(RuntimeError):
    pass


class GateSupervisor:
    """Keeps one gate process running over `marks`, restarting it at once.

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
        mark_mount: bool = False,
        ready_timeout: float = 30.0,
        ping_interval: float = 1.0,
        ping_timeout: float = 5.0,
        python: str = sys.executable,
    ) -> None:
        self.marks = list(marks)
        self.table = table
        self.on_blocked = on_blocked
        self.on_outage = on_outage
        self.mark_mount = mark_mount
        self.ready_timeout = ready_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.python = python
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._last_pong = time.monotonic()
        self._ping_seq = 0
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self._spawn()
        if not self._ready.wait(self.ready_timeout):
            self._kill()
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
            self._send({"table": table_to_json(table)})

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc and proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # the gate answers what is pending and exits
        if proc:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        for t in self._threads:
            t.join(timeout=10)

    # -- internals

    def _spawn(self) -> None:
        args = [self.python, "-m", "agent.os.gateproc"]
        for path in self.marks:
            args += ["--mark", path]
        if self.mark_mount:
            args.append("--mount")
        self._ready.clear()
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        with self._lock:
            self._proc = proc
            self._send({"table": table_to_json(self.table)})
        self._read_until_ready(proc)

    def _read_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                return
            if self._handle(line):
                return

    def _handle(self, line: bytes) -> bool:
        """Dispatch one line from the gate; True if it was "ready"."""
        message = json.loads(line)
        if "ready" in message:
            self._last_pong = time.monotonic()
            self._ready.set()
            return True
        if "pong" in message:
            self._last_pong = time.monotonic()
        elif "blocked" in message and self.on_blocked is not None:
            self.on_blocked(Blocked(**message["blocked"]))
        return False

    def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EINVAL):
                raise

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            line = proc.stdout.readline()
            if line:
                self._handle(line)
                continue
            # EOF: the gate is gone (crashed, killed, or stopped by us).
            code = proc.wait()
            if self._stopping.is_set():
                return
            began = time.monotonic()
            cause = f"gate exited with {code}"
            log.error("exec gate: %s; restarting", cause)
            if self.on_outage:
                self.on_outage(GateOutage(True, began, cause))
            while not self._stopping.is_set():
                self.restarts += 1
                try:
                    self._spawn()
                except OSError:
                    log.exception("exec gate: cannot start the gate process")
                if self._ready.is_set():
                    break
                self._kill()
                self._stopping.wait(1.0)  # failing to start: retry each second, still locked
            if self.on_outage and self._ready.is_set():
                end = time.monotonic()
                self.on_outage(GateOutage(False, end, cause, end - began))

    def _watchdog(self) -> None:
        while not self._stopping.wait(self.ping_interval):
            if not self._ready.is_set():
                continue
            if time.monotonic() - self._last_pong > self.ping_timeout:
                log.error("exec gate: no answer for %.1f s; killing it", self.ping_timeout)
                self._last_pong = time.monotonic()
                self._kill()
                continue
            with self._lock:
                self._ping_seq += 1
                self._send({"ping": self._ping_seq})

    def _kill(self) -> None:
        proc = self._proc
        if proc and proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
