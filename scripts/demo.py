"""The demo behind `scripts/demo`: the dashboard and a simulated tablet, talking.

Starts `minormode-dashboard serve` (SQLite under STATE/dashboard.sqlite, on loopback) and
the agent in development mode (`--dashboard` pointing at it, `--pair-on-start`), each in
its own process with its log in STATE. Prints the URL to open, the tablet's pairing code
and QR link, and plays the tablet's screen: when a guardian answers, it shows the six-digit
SAS and asks whether the guardian's screen shows the same (`--confirm yes|no` answers for
scripts). Both processes are stopped by PID on Ctrl-C, after `--for SECONDS`, or when one
of them ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
POLL = 0.25  # seconds between looks at the tablet's screen (a person is watching, not a test)
Procs = list[subprocess.Popen[bytes]]


def free_port(wanted: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: Procs) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"demo: a process ended while waiting for {what}; see the logs")
        time.sleep(POLL)
    raise SystemExit(f"demo: no {what} within {timeout:g} s; see the logs")


class Tablet:
    """The simulated tablet's Guardian1 object, over its development bus."""

    def __init__(self, address: str) -> None:
        self.loop = asyncio.new_event_loop()

        async def connect() -> MessageBus:
            return await MessageBus(bus_address=address).connect()

        self.bus = self.loop.run_until_complete(connect())

    def _call(self, member: str, signature: str = "", body: list[Any] | None = None) -> list[Any]:
        reply = self.loop.run_until_complete(self.bus.call(Message(
            destination="org.minormode.Agent1", path="/org/minormode/Guardian1",
            interface="org.minormode.Guardian1", member=member, signature=signature, body=body or [])))
        if reply is None or reply.message_type is MessageType.ERROR:
            return []
        return list(reply.body)

    def trust(self) -> dict[str, Any]:
        body = self._call("GetTrust")
        return {k: v.value for k, v in body[0].items()} if body else {}

    def confirm(self, same: bool) -> None:
        self._call("ConfirmPairing", "b", [same])

    def close(self) -> None:
        self.bus.disconnect()
        self.loop.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/v1/server-key", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _bus_address(log: Path) -> str:
    found = re.search(r"development bus (\S+):", log.read_text(errors="replace")) if log.exists() else None
    return found.group(1) if found else ""


def _start(args: argparse.Namespace, state: Path, url: str, port: int, procs: Procs) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    database = f"sqlite:///{state / 'dashboard.sqlite'}"
    server = [PY, "-m", "dashboard.cli", "--db", database, "serve", "--port", str(port), "--insecure-cookies"]
    with (state / "dashboard.log").open("ab") as log:
        procs.append(subprocess.Popen(server, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env))
    wait_for("dashboard", lambda: _answers(url), 60, procs)
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    policy = ROOT / "config" / "policies" / "8-12.toml"
    agent = [PY, "-m", "agent.daemon", "--dev", "--speed", str(args.speed), "--start", start, "--policy",
             str(policy), "--state", str(state / "agent"), "--dashboard", url, "--pair-on-start"]
    with (state / "agent.log").open("ab") as log:
        procs.append(subprocess.Popen(agent, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", type=Path, default=ROOT / "state" / "demo", help="default ./state/demo")
    p.add_argument("--port", type=int, default=8080, help="the dashboard's port (another one if taken)")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    p.add_argument("--confirm", choices=("yes", "no"), help="answer the SAS question (scripts)")
    p.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    p.add_argument("--fresh", action="store_true", help="start from an empty state directory")
    args = p.parse_args(argv)
    state: Path = args.state
    if args.fresh and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    port = free_port(args.port)
    url = f"http://127.0.0.1:{port}"
    procs: Procs = []
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        _start(args, state, url, port, procs)
        address = wait_for("the tablet's bus", lambda: _bus_address(state / "agent.log"), 60, procs)
        log = state / "agent.log"
        wait_for("the tablet's agent", lambda: "enforcing policy version" in log.read_text(), 60, procs)
        tablet = Tablet(address)
        try:
            print(f"dashboard:  {url}   (sign up there, then add a device)")
            print(f"tablet bus: DBUS_SYSTEM_BUS_ADDRESS={address}  (minormodectl status, trust, sync status)")
            def shown() -> dict[str, Any] | None:
                t = tablet.trust()
                return t if t.get("Code") or t.get("Paired") else None

            info = wait_for("the pairing code", shown, 60, procs)
            if info.get("Paired"):
                print("the tablet is paired already (kept from an earlier run; --fresh starts over)")
            else:
                code = str(info["Code"])
                print(f"pairing code: {code[:4]} {code[4:]}   (or open the QR link: {info['QrUrl']})")
            sys.stdout.flush()
            return _screen(args, tablet, procs, stop)
        finally:
            tablet.close()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _screen(args: argparse.Namespace, tablet: Tablet, procs: Procs, stop: dict[str, bool]) -> int:
    """The tablet's screen: the SAS when a guardian answers, then that it is paired."""
    deadline = None if args.duration is None else time.monotonic() + args.duration
    shown_sas, code, paired = "", "", False
    while not stop["now"] and (deadline is None or time.monotonic() < deadline):
        if any(p.poll() is not None for p in procs):
            print(f"demo: a process ended; see the logs in {args.state}", file=sys.stderr)
            return 1
        t = tablet.trust()
        if t.get("Code") and t["Code"] != code and not t.get("Paired"):
            if code:
                print(f"new pairing code: {t['Code'][:4]} {t['Code'][4:]}")
            code = str(t["Code"])
        if t.get("Sas") and t["Sas"] != shown_sas:
            shown_sas = str(t["Sas"])
            tablet.confirm(_ask(args, f"the tablet shows {shown_sas[:3]} {shown_sas[3:]}: "
                                      "the same on the guardian's screen?"))
        if t.get("Paired") and not paired:
            paired = True
            names = ", ".join(str(label or kid) for kid, label in t.get("Guardians", []))
            print(f"paired with {names}: the guardian's rules now reach the tablet")
        sys.stdout.flush()
        time.sleep(POLL)
    return 0


def _ask(args: argparse.Namespace, question: str) -> bool:
    if args.confirm is not None:
        print(f"{question} {args.confirm}")
        return bool(args.confirm == "yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


if __name__ == "__main__":
    sys.exit(main())
