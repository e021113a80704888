"""minormodectl: policies, the running agent, the journal and data rights, purchases, the
filter's lists, the app catalogue, first boot. One parser; each command group is a module
of this package (its `register(subparsers)`), apps and firstboot where their parts live.

Read commands take --json (status, check, explain, simulate, journal verify/read, data
list, purchases list, apps, lists info) for scripts and the production line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from agent import firstboot
from agent.cli import data, guardian, journal, lists, lockdown, pairing, policy, purchases, running
from agent.cli.errors import EXIT_CODES_HELP, Exit
from agent.execgate import cli as apps_cli

# In the order `--help` lists them.
COMMAND_MODULES = (policy, running, pairing, guardian, journal, data, purchases, lists, apps_cli, firstboot,
                   lockdown)


DESCRIPTION = """\
minormodectl checks, explains and simulates policy files; talks to the running minor-mode
agent over D-Bus (status, asking for time, the guardian's code, grants, loading a policy,
pairing with a guardian, sync status); reads the sealed event journal and the guardian's
data rights; answers pending purchases; compiles the content filter's lists; lists the
installed apps; and runs first boot.

Read commands take --json for scripts: one JSON object or list, keys in snake_case,
times in ISO 8601 with their offset, money in minor units, durations in seconds. The text
output is for people: amounts in yuan, durations in minutes, local clock times."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minormodectl", description=DESCRIPTION, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _version() -> str:
    try:
        return version("minormode")
    except PackageNotFoundError:  # a tree run without installing it
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # --help, --version, a usage error: their text is flushed here
            sys.stdout.flush()
            raise
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
        return Exit.PIPE_CLOSED
    return result


def _drop_stdout() -> None:
    """The reader left (`| head`): point standard output at /dev/null so the interpreter's
    last flush at exit finds nowhere to fail (the Python docs' recipe for SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a test's captured stream has no descriptor
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
