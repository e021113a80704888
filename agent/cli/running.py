"""`minormodectl status | ask-time | report | code | grant | load`: the running agent, over
D-Bus (org.minormode.Agent1 on the system bus, or `--bus ADDRESS`).

Exit status (agent.cli.errors): 1 when the agent refused (AccessDenied, a wrong code, a
policy it did not load), 2 for its InvalidArgs or a bad option, 3 when it is not running
(the bus cannot be reached, or nobody owns the agent's name).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from agent.api.controller import ReportKind
from agent.api.service import BUS_NAME, INTERFACE, OBJECT_PATH
from agent.bus.calls import call
from agent.cli.errors import Command, Exit, NotRunningError, fail, guarded
from agent.cli.output import add_json_flag, print_json

INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
# The agent is not there to answer: nobody owns its name (or it left mid-call).
NOT_RUNNING = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
})


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
        return Exit.OK, asyncio.run(_call(args.bus, member, signature, body))
    except DBusError as exc:
        if exc.type in NOT_RUNNING:
            raise NotRunningError(f"the agent is not running: {exc.type}: {exc.text}") from exc
        fail(f"{exc.type}: {exc.text}")
        return (Exit.BAD_INPUT if exc.type == INVALID_ARGS else Exit.FAILED), []
    except OSError as exc:
        raise NotRunningError(f"cannot reach the agent's bus: {exc}") from exc


def cmd_status(args: argparse.Namespace) -> int:
    code, body = _run(args, "GetStatus")
    if code != Exit.OK:
        return code
    status = {key: value.value for key, value in sorted(body[0].items())}
    if args.json:
        print_json(status)
        return code
    for key, value in status.items():
        print(f"{key}: {value}")
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
    if code != Exit.OK:
        return code
    print(body[1])
    return Exit.OK if body[0] else Exit.FAILED


def cmd_code(args: argparse.Namespace) -> int:
    return _answer(*_run(args, "EnterGuardianCode", "s", [args.code]))


def cmd_grant(args: argparse.Namespace) -> int:
    return _answer(*_run(args, "GrantMinutes", "us", [args.minutes, args.reason]))


def cmd_load(args: argparse.Namespace) -> int:
    return _answer(*_run(args, "LoadPolicy", "s", [str(Path(args.path).absolute())]))


def _minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 minute")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(name: str, help_: str, func: Command) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
        p.add_argument("--bus", help="bus address (default: the system bus)")
        p.set_defaults(func=guarded(func))
        return p

    add_json_flag(add("status", "the running agent's status", cmd_status))
    p = add("ask-time", "(the child) ask the guardian for more minutes", cmd_ask_time)
    p.add_argument("minutes", type=_minutes)
    p.add_argument("--note", default="")
    p = add("report", "(the child) ask for help or report something to the guardian", cmd_report)
    p.add_argument("kind", choices=[k.value for k in ReportKind])
    p.add_argument("--note", default="")
    add("code", "(the child) enter the guardian's 8-digit code", cmd_code).add_argument("code")
    p = add("grant", "(root) grant bonus minutes for today", cmd_grant)
    p.add_argument("minutes", type=_minutes)
    p.add_argument("--reason", default="")
    add("load", "(root) load a policy file into the running agent", cmd_load).add_argument("path")
