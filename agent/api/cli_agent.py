"""minormodectl subcommands that talk to the running agent over D-Bus (org.minormode.Agent1),
plus `guardian-code`, which prints the current offline code from a pairing secret.

Register with `COMMAND_MODULES = ("agent.api.cli_agent",)` in agent/cli.py. Exit status:
0 done, 1 refused or not granted, 2 bad input (the agent's InvalidArgs or a bad option).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from agent.api.controller import ReportKind
from agent.api.service import BUS_NAME, INTERFACE, OBJECT_PATH
from agent.bus.calls import call
from agent.core import guardian_code

EXIT_REFUSED, EXIT_BAD_INPUT = 1, 2
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"


async def _call(address: str | None, member: str, signature: str = "",
                body: list[Any] | None = None) -> list[Any]:
    bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
    try:
        reply = await call(bus, BUS_NAME, OBJECT_PATH, INTERFACE, member, signature, body)
        return list(reply.body)
    finally:
        bus.disconnect()


def _run(args: argparse.Namespace, member: str, signature: str = "",
         body: list[Any] | None = None) -> tuple[int, list[Any]]:
    try:
        return 0, asyncio.run(_call(args.bus, member, signature, body))
    except DBusError as exc:
        print(f"minormodectl: {exc.type}: {exc.text}", file=sys.stderr)
        return (EXIT_BAD_INPUT if exc.type == INVALID_ARGS else EXIT_REFUSED), []
    except OSError as exc:
        print(f"minormodectl: cannot reach the agent's bus: {exc}", file=sys.stderr)
        return EXIT_REFUSED, []


def cmd_status(args: argparse.Namespace) -> int:
    code, body = _run(args, "GetStatus")
    if code == 0:
        for key, value in sorted(body[0].items()):
            print(f"{key}: {value.value}")
    return code


def cmd_ask_time(args: argparse.Namespace) -> int:
    code, body = _run(args, "RequestMoreTime", "us", [args.minutes, args.note])
    if code == 0:
        print(f"request {body[0]} sent to the guardian")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    code, body = _run(args, "Report", "ss", [args.kind, args.note])
    if code == 0:
        print(f"report {body[0]} sent to the guardian")
    return code


def _answer(code: int, body: list[Any]) -> int:
    if code != 0:
        return code
    print(body[1])
    return 0 if body[0] else EXIT_REFUSED


def cmd_code(args: argparse.Namespace) -> int:
    return _answer(*_run(args, "EnterGuardianCode", "s", [args.code]))


def cmd_grant(args: argparse.Namespace) -> int:
    return _answer(*_run(args, "GrantMinutes", "us", [args.minutes, args.reason]))


def cmd_load(args: argparse.Namespace) -> int:
    return _answer(*_run(args, "LoadPolicy", "s", [str(Path(args.path).absolute())]))


def cmd_guardian_code(args: argparse.Namespace) -> int:
    """The guardian's side: the code valid now, from the pairing secret (hex in a file)."""
    try:
        secret = bytes.fromhex(Path(args.secret_file).read_text().strip())
        print(guardian_code.code_at(secret, datetime.now(UTC)))
    except (OSError, ValueError) as exc:
        print(f"minormodectl: guardian-code: {args.secret_file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 minute")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
        p.add_argument("--bus", help="bus address (default: the system bus)")
        return p

    p = add("status", "the running agent's status")
    p.set_defaults(func=cmd_status)
    p = add("ask-time", "(the child) ask the guardian for more minutes")
    p.add_argument("minutes", type=_minutes)
    p.add_argument("--note", default="")
    p.set_defaults(func=cmd_ask_time)
    p = add("report", "(the child) ask for help or report something to the guardian")
    p.add_argument("kind", choices=[k.value for k in ReportKind])
    p.add_argument("--note", default="")
    p.set_defaults(func=cmd_report)
    p = add("code", "(the child) enter the guardian's 8-digit code")
    p.add_argument("code")
    p.set_defaults(func=cmd_code)
    p = add("grant", "(root) grant bonus minutes for today")
    p.add_argument("minutes", type=_minutes)
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_grant)
    p = add("load", "(root) load a policy file into the running agent")
    p.add_argument("path")
    p.set_defaults(func=cmd_load)
    p = sub.add_parser("guardian-code", help="print the guardian code valid now")
    p.add_argument("--secret-file", required=True, help="the pairing secret, hex")
    p.set_defaults(func=cmd_guardian_code)
