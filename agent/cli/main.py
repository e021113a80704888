"""minormodectl: policies, the running agent, the journal and data rights, purchases, the
filter's lists, the app catalogue, first boot. One parser; each command group is a module
of this package (its `register(subparsers)`), apps and firstboot where their parts live.

Read commands take --json (status, check, explain, simulate, journal verify/read, data
list, purchases list, apps, lists info) for scripts and the production line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent import firstboot
from agent.cli import data, guardian, journal, lists, policy, purchases, running
from agent.cli.errors import EXIT_CODES_HELP
from agent.execgate import cli as apps_cli

# In the order `--help` lists them.
COMMAND_MODULES = (policy, running, guardian, journal, data, purchases, lists, apps_cli, firstboot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minormodectl", description=__doc__, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
