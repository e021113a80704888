"""`minormodectl status | ask-time | report | code | grant | load`: the running agent, over
D-Bus (org.minormode.Agent1 on the system bus, or `--bus ADDRESS`).

Exit status (agent.cli.errors): 1 when the agent refused (AccessDenied, a wrong code, a
policy it did not load), 2 for its InvalidArgs or a bad option, 3 when it is not running
(the bus cannot be reached, or nobody owns the agent's name).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError, InvalidAddressError

from agent.api.controller import ReportKind
from agent.api.service import BUS_NAME, INTERFACE, OBJECT_PATH
from agent.bus.calls import call
from agent.cli.errors import BadInputError, Command, Exit, NotRunningError, fail, guarded
from agent.cli.human import epoch_clock, minutes
from agent.cli.output import add_json_flag, print_json

INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
# The agent is not there to answer: nobody owns its name (or it left mid-call).
NOT_RUNNING = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
})
# Where dbus-fast looks for the system bus when neither --bus nor the variable says.
DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
POINT_ELSEWHERE = ("point minormodectl at another bus with --bus ADDRESS or DBUS_SYSTEM_BUS_ADDRESS "
                   "(scripts/run-dev prints the line to export)")


def bus_address(args: argparse.Namespace) -> str:
    """The bus a command talks to, and how it was chosen (for the message when nobody answers)."""
    if args.bus:
        return f"{args.bus} (--bus)"
    if env := os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"):
        return f"{env} (DBUS_SYSTEM_BUS_ADDRESS)"
    return f"{DEFAULT_SYSTEM_BUS} (the system bus)"


async def _call(address: str | None, member: str, signature: str = "", body: list[Any] | None = None,
                path: str = OBJECT_PATH, interface: str = INTERFACE) -> list[Any]:
    bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
    try:
        reply = await call(bus, BUS_NAME, path, interface, member, signature, body)
        return list(reply.body)
    finally:
        bus.disconnect()


def run_call(args: argparse.Namespace, member: str, signature: str = "", body: list[Any] | None = None,
             path: str = OBJECT_PATH, interface: str = INTERFACE) -> tuple[int, list[Any]]:
    """One call to the running agent, its D-Bus errors mapped to the CLI's exit codes."""
    try:
        return Exit.OK, asyncio.run(_call(args.bus, member, signature, body, path, interface))
    except DBusError as exc:
        if exc.type in NOT_RUNNING:
            raise NotRunningError(
                f"the agent is not running: nobody answers as {BUS_NAME} on {bus_address(args)} "
                f"({exc.type}); is minormode-agent.service running (systemctl status minormode-agent)? "
                f"{POINT_ELSEWHERE}") from exc
        fail(f"{exc.type}: {exc.text}")
        return (Exit.BAD_INPUT if exc.type == INVALID_ARGS else Exit.FAILED), []
    except InvalidAddressError as exc:
        raise BadInputError(f"bus address {bus_address(args)}: {exc} (a D-Bus address such as "
                            "unix:path=/run/dbus/system_bus_socket)") from exc
    except OSError as exc:
        raise NotRunningError(f"cannot reach the agent's bus at {bus_address(args)}: "
                              f"{exc.strerror or exc}; {POINT_ELSEWHERE}") from exc


def cmd_status(args: argparse.Namespace) -> int:
    code, body = run_call(args, "GetStatus")
    if code != Exit.OK:
        return code
    status = {key: value.value for key, value in sorted(body[0].items())}
    if args.json:
        print_json(status)
        return code
    for line in describe_status(status):
        print(line)
    return code


def _zone(name: object) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(name)) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def describe_status(status: dict[str, Any]) -> list[str]:
    """GetStatus for a person: minutes, clock times in the policy's timezone (this machine's
    when an older agent does not say), "no limit" for the -1s."""
    tz = _zone(status.get("Timezone")) or datetime.now().astimezone().tzinfo or UTC
    today = datetime.now(tz).date()
    out = [f"minor mode: {'on' if status.get('MinorMode', True) else 'off'}, age band "
           f"{status.get('AgeBand') or '-'}, policy version {status.get('PolicyVersion')}"
           + (f" signed by {status['PolicySigner']}" if status.get("PolicySigner") else "")]
    change = int(status.get("NextChange", 0))
    if status.get("Locked"):
        why = status.get("LockMessage") or status.get("LockReason") or "locked"
        until = f" until {epoch_clock(change, tz, today=today)}" if change else ""
        out.append(f"LOCKED{until}: {why} ({status.get('LockReason')})")
    else:
        left = int(status.get("RemainingSeconds", -1))
        out.append("unlocked: no limit ahead" if left < 0 else f"unlocked: {minutes(left)} left")
        if change:
            out.append(f"next change: {epoch_clock(change, tz, today=today)}")
    budget = int(status.get("BudgetSeconds", -1))
    out.append(f"used today: {minutes(int(status.get('UsedSeconds', 0)))} of "
               + ("no limit" if budget < 0 else minutes(budget)))
    contact = int(status.get("LastContact", 0))
    out.append(f"dashboard: last contact {epoch_clock(contact, tz, today=today) if contact else 'never'}, "
               f"{status.get('PendingUploads', 0)} waiting to be sent")
    if status.get("FilterProblems"):  # loud: a category the guardian chose that blocks nothing
        out.append(f"FILTER NOT IN FORCE: {status['FilterProblems']}")
    if int(status.get("DnsEventsDropped", 0)):
        out.append(f"filter: {status['DnsEventsDropped']} blocked lookups counted but not itemised (a flood)")
    out.append(f"language: {status.get('Language')}; times in {getattr(tz, 'key', tz)}")
    return out


def cmd_ask_time(args: argparse.Namespace) -> int:
    code, body = run_call(args, "RequestMoreTime", "us", [args.minutes, args.note])
    if code == 0:
        print(f"request {body[0]} sent to the guardian")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    code, body = run_call(args, "Report", "ss", [args.kind, args.note])
    if code == 0:
        print(f"report {body[0]} sent to the guardian")
    return code


def _answer(code: int, body: list[Any]) -> int:
    if code != Exit.OK:
        return code
    print(body[1])
    return Exit.OK if body[0] else Exit.FAILED


def cmd_code(args: argparse.Namespace) -> int:
    return _answer(*run_call(args, "EnterGuardianCode", "s", [args.code]))


def cmd_grant(args: argparse.Namespace) -> int:
    return _answer(*run_call(args, "GrantMinutes", "us", [args.minutes, args.reason]))


def cmd_load(args: argparse.Namespace) -> int:
    path = Path(args.path).absolute()
    if not path.is_file():  # named here, before the agent is asked (it reads the same path)
        raise BadInputError(f"load {args.path}: no such file")
    return _answer(*run_call(args, "LoadPolicy", "s", [str(path)]))


def _minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 minute")
    return value


def bus_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str,
                func: Command) -> argparse.ArgumentParser:
    """A command that talks to the running agent (it takes --bus)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    p.add_argument("--bus", help="bus address (default: the system bus)")
    p.set_defaults(func=guarded(func))
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(name: str, help_: str, func: Command) -> argparse.ArgumentParser:
        return bus_command(sub, name, help_, func)

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
