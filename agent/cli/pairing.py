"""`minormodectl pair | trust | sync status`: the device's guardians, over Guardian1.

`pair` (root) asks the running agent to pair through its dashboard, prints the code and a
QR code (a full QR: phone scanners fail on Micro QR), then the six-digit SAS once a
guardian answered, and asks the person at the tablet whether the guardian's screen shows
the same number (`--confirm yes|no` answers for scripts; the QR path needs no answer).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

import segno

from agent.api.guardian_service import INTERFACE, OBJECT_PATH
from agent.cli.errors import Command, Exit, fail, guarded
from agent.cli.output import add_json_flag, print_json
from agent.cli.running import bus_command, run_call
from protocol.pairing import format_code, format_sas

POLL = 0.5  # seconds between reads of the pairing state (a person is waiting, not a test)


def _trust(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    code, body = run_call(args, "GetTrust", path=OBJECT_PATH, interface=INTERFACE)
    return code, ({k: v.value for k, v in body[0].items()} if code == Exit.OK else {})


def _when(unix: int) -> str:
    if not unix:
        return "never"
    return datetime.fromtimestamp(unix, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def cmd_trust(args: argparse.Namespace) -> int:
    code, trust = _trust(args)
    if code != Exit.OK:
        return code
    if args.json:
        print_json(trust)
        return code
    family = f" (family {trust['Family']})" if trust["Paired"] else ""
    print(f"paired: {'yes' if trust['Paired'] else 'no'}{family}")
    print(f"device: {trust['DeviceId']}")
    for kid, label in trust["Guardians"]:
        print(f"guardian: {label or '(no name)'} {kid}")
    print(f"signed policy in force: version {trust['PolicyVersion']}"
          + (f", signed by {trust['PolicySigner']}" if trust["PolicySigner"] else ""))
    return code


def cmd_sync_status(args: argparse.Namespace) -> int:
    code, trust = _trust(args)
    if code != Exit.OK:
        return code
    keys = ("Dashboard", "Connected", "LastContact", "LastError", "PendingUploads", "Outbox", "PolicyVersion",
            "PolicySigner", "Paired")
    fields = {k: trust.get(k) for k in keys}
    if args.json:
        print_json(fields)
        return code
    if not fields["Dashboard"]:
        print("no dashboard configured (the agent's --dashboard)")
        return code
    print(f"dashboard: {fields['Dashboard']} ({'connected' if fields['Connected'] else 'not connected'})")
    print(f"last contact: {_when(int(fields['LastContact'] or 0))}")
    print(f"waiting to be sent: {fields['PendingUploads']} journal records, {fields['Outbox']} messages")
    print(f"signed policy in force: version {fields['PolicyVersion']}"
          + (f", signed by {fields['PolicySigner']}" if fields["PolicySigner"] else ""))
    if fields["LastError"]:
        print(f"last problem: {fields['LastError']}")
    return code


def cmd_pair(args: argparse.Namespace) -> int:
    code, _ = run_call(args, "StartPairing", path=OBJECT_PATH, interface=INTERFACE)
    if code != Exit.OK:
        return code
    deadline = time.monotonic() + args.timeout
    shown_code = shown_sas = ""
    while time.monotonic() < deadline:
        code, trust = _trust(args)
        if code != Exit.OK:
            return code
        if trust["Paired"]:
            names = ", ".join(label or kid for kid, label in trust["Guardians"])
            print(f"paired with {names} (family {trust['Family']})")
            return Exit.OK
        if trust["Code"] and trust["Code"] != shown_code:
            shown_code = trust["Code"]
            until = _when(int(trust["PairingExpires"]))
            print(f"pairing code: {format_code(shown_code)}  (valid until {until})")
            print(f"or scan: {trust['QrUrl']}")
            segno.make_qr(trust["QrUrl"]).terminal(out=sys.stdout, compact=True)
            sys.stdout.flush()
        if trust["Sas"] and trust["Sas"] != shown_sas:
            shown_sas = trust["Sas"]
            code = _confirm(args, shown_sas)
            if code != Exit.OK:
                return code
        if not trust["Code"] and not trust["Sas"] and trust["LastError"].startswith("pairing"):
            fail(trust["LastError"])
            return Exit.FAILED
        time.sleep(POLL)
    fail(f"not paired within {args.timeout:g} s")
    return Exit.FAILED


def _confirm(args: argparse.Namespace, sas: str) -> int:
    prompt = f"Does the guardian's screen show {format_sas(sas)}? [y/N] "
    if args.confirm is not None:
        print(prompt + args.confirm)
        same = args.confirm == "yes"
    else:
        same = input(prompt).strip().lower() in ("y", "yes")
    code, _ = run_call(args, "ConfirmPairing", "b", [same], path=OBJECT_PATH, interface=INTERFACE)
    if code == Exit.OK and not same:
        fail("the numbers differ: pairing refused (someone may be in the middle)")
        return Exit.FAILED
    return code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(name: str, help_: str, func: Command) -> argparse.ArgumentParser:
        return bus_command(sub, name, help_, func)

    p = add("pair", "(root) pair this device with a guardian through the dashboard", cmd_pair)
    p.add_argument("--confirm", choices=("yes", "no"), help="answer the SAS question (scripts)")
    p.add_argument("--timeout", type=float, default=660.0, help="seconds to wait (default 660)")
    add_json_flag(add("trust", "who the device's guardians are, and the signed policy in force", cmd_trust))
    sync = sub.add_parser("sync", help="the device's sync with the guardian's dashboard")
    ssub = sync.add_subparsers(dest="sync_command", required=True)
    p = ssub.add_parser("status", help="last contact, what waits to be sent, the policy in force")
    p.add_argument("--bus", help="bus address (default: the system bus)")
    add_json_flag(p)
    p.set_defaults(func=guarded(cmd_sync_status))
