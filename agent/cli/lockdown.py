"""`minormodectl lockdown check [--root DIR] [--boot DIR] [--json] [--child-user NAME]`: the device
lockdown audit (agent/lockdown), for the production line and the image's tests.

Audits the running system (root "/", with the kernel's live SysRq and command line) or a
root file system in a directory. Prints each open item with the file it looked at and the
fix; exit 0 only when every check holds, 1 when something is open, 2 for bad input.
"""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

from agent.cli.errors import BadInputError, Exit, guarded
from agent.cli.output import add_json_flag, print_json
from agent.lockdown.accounts import UnknownAccountError
from agent.lockdown.audit import Report, audit, context_for
from agent.lockdown.manifest import BOOT_DIR
from agent.lockdown.rootdir import RootDir, running_kernel
from agent.runtime.config import DEFAULT_CHILD_UID


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lockdown = subparsers.add_parser("lockdown", help="the device's console, debug and USB lockdown")
    sub = lockdown.add_subparsers(dest="lockdown_command", required=True)
    check = sub.add_parser("check", help="audit the lockdown; exit 0 only when everything holds")
    check.add_argument("--root", type=Path, default=Path("/"),
                       help="a root file system in a directory (default: the running system)")
    check.add_argument("--boot", type=Path, metavar="DIR",
                       help=f"the boot partition's files, seen at {BOOT_DIR} (an image being built, "
                            "a card's partitions mounted apart)")
    check.add_argument("--child-user", action="append", default=[], metavar="NAME",
                       help="the child's account (repeatable; default: the agent's child_uid "
                            "in /etc/minormode/agent.conf and agent.conf.d, else uid "
                            f"{DEFAULT_CHILD_UID})")
    add_json_flag(check)
    check.set_defaults(func=guarded(run_check, bad_input=(UnknownAccountError,)))


def run_check(args: argparse.Namespace) -> int:
    root: Path = args.root
    try:
        is_dir = stat.S_ISDIR(root.stat().st_mode)  # refused: PermissionError, exit 3 (run as root)
    except (FileNotFoundError, NotADirectoryError):
        raise BadInputError(f"--root {root}: no such directory") from None
    if not is_dir:
        raise BadInputError(f"--root {root}: not a directory")
    if not (root / "etc").is_dir():
        raise BadInputError(f"--root {root}: no etc/ there, not a root file system")
    if args.boot is not None and not args.boot.is_dir():
        raise BadInputError(f"--boot {args.boot}: no such directory")
    running = root.resolve() == Path("/") and args.boot is None
    view = RootDir(root, {BOOT_DIR: args.boot} if args.boot is not None else None)
    ctx = context_for(view, child_names=args.child_user, default_uid=DEFAULT_CHILD_UID,
                      runtime=running_kernel() if running else None)
    report = audit(view, ctx, str(root))
    if args.json:
        print_json({"root": report.root, "running_system": running, "children": report.children,
                    "checks": report.checks, "holds": report.holds, "open": report.open})
    else:
        print_report(report)
    return Exit.OK if report.holds else Exit.FAILED


def print_report(report: Report) -> None:
    children = ", ".join(report.children) or "none found"
    print(f"lockdown check of {report.root} (child: {children})")
    for finding in report.open:
        print(f"OPEN {finding.id}: {finding.what}")
        print(f"     looked at: {finding.path}")
        print(f"     fix: {finding.fix}")
    if report.holds:
        print(f"lockdown holds: {len(report.checks)} checks")
    else:
        print(f"{len(report.open)} open ({len(report.checks)} checks)")
