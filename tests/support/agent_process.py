"""The real agent daemon as a process for end-to-end tests: development mode (a private
bus with a fake logind and a simulated child), started from a state directory that
survives it, stopped politely or with kill -9, its log read for its bus address."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.orphans import die_with_parent
from support.sessionbus import CHILD_UID

ROOT = Path(__file__).parents[2]
CLIENT = ROOT / "tests" / "support" / "dbus_client.py"


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 90) -> re.Match[str]:
    """The first line a process prints that matches `pattern` (bounded); what it printed
    is in the error when it never does."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if found := re.search(pattern, line):
            return found
    raise AssertionError(f"{pattern!r} never printed:\n{''.join(seen)}")


class AgentProcess:
    def __init__(self, tmp: Path, *extra: str, speed: float = 60, policy_text: str | None = None) -> None:
        self.tmp, self.extra, self.speed = tmp, extra, speed
        tmp.mkdir(parents=True, exist_ok=True)
        self.policy = tmp / "policy.toml"
        if policy_text is not None or not self.policy.exists():
            self.policy.write_text(policy_text or (ROOT / "config" / "policies" / "8-12.toml").read_text())
        self.state = tmp / "state"
        self.log = tmp / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0
        self.address = ""

    def start(self, timeout: float = 60) -> AgentProcess:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        start = datetime.now(UTC).replace(microsecond=0).isoformat()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(die_with_parent(
                [sys.executable, "-m", "agent.daemon", "--dev", "--speed", str(self.speed), "--start", start,
                 "--policy", str(self.policy), "--state", str(self.state), "--child-uid", str(CHILD_UID),
                 *self.extra]), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ))
        self.address = self.wait_log(r"development bus (\S+):", timeout).group(1)
        self.wait_log("enforcing policy version", timeout)
        return self

    def text(self) -> str:
        return self.log.read_bytes()[self.offset:].decode(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the agent's log:\n{self.text()[-4000:]}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                              cwd=ROOT, check=check, timeout=timeout)

    def as_child(self, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        """Agent1 calls as the child's uid (the bus tells the agent who calls)."""
        out = subprocess.run(["/usr/bin/python3", str(CLIENT), self.address, json.dumps(list(calls))],
                             capture_output=True, text=True, user=CHILD_UID, check=True, timeout=60)
        result: list[dict[str, Any]] = json.loads(out.stdout)
        return result

    def status(self) -> dict[str, Any]:
        out = self.cli("status", "--json", "--bus", self.address)
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def trust(self) -> dict[str, Any]:
        out = self.cli("trust", "--json", "--bus", self.address)
        result: dict[str, Any] = json.loads(out.stdout)
        return result


class AgentBus:
    """A root connection to the agent's bus that reads its status fast (latency tests). Its
    event loop runs in a thread of its own, so it works beside Playwright's sync API (which
    keeps a loop running in the test's thread)."""

    def __init__(self, address: str) -> None:
        import asyncio
        import threading

        from dbus_fast.aio import MessageBus

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        async def connect() -> MessageBus:
            return await MessageBus(bus_address=address).connect()

        self.bus = self._run(connect())

    def _run(self, coro: Any) -> Any:
        return self._asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def call(self, path: str, interface: str, member: str, signature: str = "",
             body: list[Any] | None = None) -> list[Any]:
        from dbus_fast import Message, MessageType

        reply = self._run(self.bus.call(Message(
            destination="org.minormode.Agent1", path=path, interface=interface, member=member,
            signature=signature, body=body or [])))
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise AssertionError(f"{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    def status(self) -> dict[str, Any]:
        body = self.call("/org/minormode/Agent1", "org.minormode.Agent1", "GetStatus")
        return {k: v.value for k, v in body[0].items()}

    def trust(self) -> dict[str, Any]:
        body = self.call("/org/minormode/Guardian1", "org.minormode.Guardian1", "GetTrust")
        return {k: v.value for k, v in body[0].items()}

    def until(self, what: str, predicate: Any, timeout: float = 30, step: float = 0.02) -> float:
        """Poll (bounded) until `predicate(self)` holds; the seconds it took."""
        start = time.monotonic()
        while not predicate(self):
            if time.monotonic() - start > timeout:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(step)
        return time.monotonic() - start

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.bus.disconnect)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
