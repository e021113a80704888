"""`minormodectl apps`: the installed-app catalogue as the guardian's rules editor sees it.

Registered by agent.cli through COMMAND_MODULES ("agent.execgate.cli").
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from agent.execgate.catalogue import DEFAULT_DIRS, scan


def cmd_apps(args: argparse.Namespace) -> int:
    for given in args.dir or ():
        if not os.path.isdir(given):
            print(f"minormodectl: apps --dir {given}: no such directory", file=sys.stderr)
            return 2  # bad input, as agent.cli.errors.Exit (adapters do not import the CLI)
    result = scan(args.dir or DEFAULT_DIRS)
    for error in result.errors:
        print(f"minormodectl apps: skipped {error}", file=sys.stderr)
    apps = sorted(result.apps.values(), key=lambda a: a.app_id)
    if args.json:
        rows = [
            {
                "app_id": app.app_id,
                "name": app.name,
                "categories": sorted(app.categories),
                "executables": list(app.executables),
                "prefixes": list(app.prefixes),
                "sha256": sorted(app.hashes),
            }
            for app in apps
        ]
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for app in apps:
        cats = ",".join(sorted(app.categories)) or "-"
        where = " ".join((*app.executables, *app.prefixes)) or "(no executable found)"
        print(f"{app.app_id}\t{app.name}\t{cats}\t{where}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("apps", help="list installed apps (app ID, name, categories, executables)")
    p.add_argument(
        "--dir", action="append", help="a .desktop directory (repeatable; default: system + Flatpak)"
    )
    p.add_argument("--json", action="store_true", help="JSON with content hashes")
    p.set_defaults(func=cmd_apps)
