"""`scripts/run-dev`: the agent in development mode, from a fresh state directory.

    python -m agent.dev.run [--keep-state] [--state DIR] [--start ISO] [agent options ...]

A second run on the first run's state would resume its usage and its trusted clock: a
`--start` before the first run's simulated time is the clock going back (tamper events, and
the start not honoured, since trusted time never goes back). So each run starts on an empty
state directory (default `./state/dev`) unless `--keep-state`; with it and no `--start`,
the simulated clock goes on from where the last run stopped (its watermark), as a reboot.
Only a directory this command made (it holds `.minormode-dev-state`) is ever emptied, so a
`--state` naming anything else is refused rather than deleted. Then the daemon replaces
this process (`exec`: `kill -HUP` reaches the agent itself), with `--dev`, the 8-12 example
policy and the state directory before the options given, so a later option wins.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from agent.store.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
MARKER = ".minormode-dev-state"
DEFAULT_STATE = Path("state/dev")
DEFAULT_POLICY = ROOT / "config/policies/8-12.toml"


class DevStateError(ValueError):
    """A --state directory development mode did not make (it is never emptied)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/run-dev", description=__doc__.split("\n\n")[0],
                                epilog="Every other option goes to the agent "
                                       "(python -m agent.daemon --help).")
    p.add_argument("--keep-state", action="store_true",
                   help="resume the last run's state (usage, grants, pairing, the simulated clock) "
                        "instead of starting afresh")
    p.add_argument("--state", type=Path, default=DEFAULT_STATE,
                   help=f"development state directory (default ./{DEFAULT_STATE}; emptied at start "
                        "unless --keep-state, and only if this command made it)")
    p.add_argument("--start", help="simulated start time, e.g. 2026-11-27T19:00+08:00 (default: the "
                                   "agent's; with --keep-state, where the last run stopped)")
    return p


def fresh_state(state: Path) -> None:
    """An empty development state directory at `state` (made, or emptied if made here)."""
    if state.exists():
        if not (state / MARKER).is_file():
            raise DevStateError(f"--state {state}: not a development state directory (no {MARKER} "
                                "in it), so it is not emptied: remove it yourself, or give another")
        shutil.rmtree(state)
    state.mkdir(parents=True, mode=0o700)
    (state / MARKER).write_text("made by scripts/run-dev; emptied at each run without --keep-state\n")


def resumed_start(state: Path) -> datetime | None:
    """Where the last run's simulated clock stopped (its trusted watermark), if it ran."""
    database = state / "state.sqlite"
    if not database.is_file():
        return None
    store = StateStore(database)
    try:
        watermark = store.load_watermark()
    finally:
        store.close()
    return watermark.trusted if watermark is not None else None


def agent_argv(argv: Sequence[str]) -> list[str]:
    """The daemon's command line for these run-dev arguments (the state prepared first)."""
    args, rest = _parser().parse_known_args(argv)
    state: Path = args.state
    start: str | None = args.start
    if args.keep_state:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        (state / MARKER).touch()
        if start is None and (resumed := resumed_start(state)) is not None:
            start = resumed.isoformat()
    else:
        fresh_state(state)
    return ["--dev", "--policy", str(DEFAULT_POLICY), "--state", str(state),
            *(["--start", start] if start is not None else []), *rest]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        daemon_args = agent_argv(sys.argv[1:] if argv is None else argv)
    except (DevStateError, OSError) as exc:
        print(f"run-dev: {exc}", file=sys.stderr)
        return 2
    os.execv(sys.executable, [sys.executable, "-m", "agent.daemon", *daemon_args])


if __name__ == "__main__":
    sys.exit(main())
