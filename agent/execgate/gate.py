"""The exec gate as its own process: `python -m agent.execgate.gate --fan-fd FD ...`.

Why a process: a crash or a hang of the gate must not take the daemon with it, and the
daemon's asyncio loop must never sit in the path of an exec. The supervisor
(`agent.execgate.supervisor`) starts it on a fanotify group it keeps open itself and
talks to it in JSON lines (`agent.execgate.messages`): stdin brings tables and pings,
stdout carries "ready", "blocked" and "pong". The gate never blocks on stdout (a full
pipe drops reports, never an answer), and it ends when stdin reaches EOF: the supervisor
closed it or died (no PDEATHSIG, which follows the spawning *thread*, not the process).

Without `--fan-fd` it makes and marks a group of its own (`--mark`): a test seam showing
what the kernel does when a lone gate dies (the group goes with it: fail-open).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
from collections.abc import Callable, Sequence

from agent.execgate import fanotify
from agent.execgate.inflight import InFlightLedger
from agent.execgate.loop import Blocked, GateLoop, create_group
from agent.execgate.messages import (
    MAX_LINE,
    BlockedReport,
    Message,
    MessageError,
    Ping,
    Pong,
    Ready,
    SetTable,
    decode_to_gate,
    encode,
)


class _Reporter:
    """Non-blocking JSON-line writer: drops a line rather than wait on the supervisor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0
        os.set_blocking(fd, False)

    def send(self, message: Message) -> None:
        line = encode(message)[:-1][:MAX_LINE] + b"\n"
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


def serve(
    fan_fd: int,
    control_fd: int,
    out_fd: int,
    ledger: InFlightLedger | None = None,
    after_read: Callable[[], None] | None = None,
    cache: bool = True,
) -> int:
    """Run the gate on `fan_fd` until `control_fd` reaches EOF (the supervisor closed it
    or died). The first control line must be a table."""
    first, pending = _first_line(control_fd)
    if not first:
        return 0
    message = decode_to_gate(first)
    if not isinstance(message, SetTable):
        raise MessageError(f"the first control line must be a table, not {first[:200]!r}")
    table = message.table
    reporter = _Reporter(out_fd)
    loop = GateLoop(
        fan_fd,
        table,
        lambda b: reporter.send(BlockedReport(_short(b))),
        ledger=ledger,
        after_read=after_read,
        cache=cache,
    )
    reporter.send(Ready(table.generation, os.getpid()))
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
                    command = decode_to_gate(line)
                    if isinstance(command, SetTable):
                        loop.swap(command.table)
                    elif isinstance(command, Ping):
                        reporter.send(Pong(command.seq, loop.stats.events))
    finally:
        while loop.handle_batch():
            pass


def _short(blocked: Blocked) -> Blocked:
    """Keep a report line under PIPE_BUF: very long paths are shortened."""
    if len(blocked.path) <= 1024:
        return blocked
    return Blocked(blocked.app_id, blocked.reason, "..." + blocked.path[-1000:], blocked.uid)


def _stop_self_once() -> Callable[[], None]:
    done = False

    def stop() -> None:
        nonlocal done
        if not done:
            done = True
            os.kill(os.getpid(), signal.SIGSTOP)

    return stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.execgate.gate")
    parser.add_argument("--fan-fd", type=int, help="the supervisor's fanotify group (inherited)")
    parser.add_argument("--ledger-fd", type=int, help="the supervisor's in-flight ledger")
    parser.add_argument("--mark", action="append", default=[], help="without --fan-fd: gate this fs")
    parser.add_argument("--mount", action="store_true", help="mark the mount, not the fs")
    # Test seam: stop (SIGSTOP) after the first read, so a test can kill the gate while
    # it holds events it has read but not answered.
    parser.add_argument("--stop-after-first-read", action="store_true", help=argparse.SUPPRESS)
    # Benchmark seam: no ignore marks, so every exec wakes the gate.
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fan_fd is None:
        if not args.mark:
            parser.error("give --fan-fd or at least one --mark")
        kind = fanotify.FAN_MARK_MOUNT if args.mount else fanotify.FAN_MARK_FILESYSTEM
        fan_fd = create_group(args.mark, kind)  # standalone: the group dies with us
    else:
        fan_fd = args.fan_fd
    ledger = InFlightLedger(args.ledger_fd) if args.ledger_fd is not None else None
    after_read = _stop_self_once() if args.stop_after_first_read else None
    return serve(fan_fd, sys.stdin.fileno(), sys.stdout.fileno(), ledger, after_read, not args.no_cache)


if __name__ == "__main__":
    sys.exit(main())
