"""minormodectl's exit codes and the errors that lead to them, shared by every command.

    0  OK            done; the answer is on standard output
    1  FAILED        the check failed or the answer is no: a bad journal record, an unreadable
                     list, a wrong guardian code, a call the running agent refused (AccessDenied
                     included: the agent decided, after reaching it)
    2  BAD_INPUT     a bad argument, file or key, named on standard error; nothing changed
    3  UNAVAILABLE   could not be done here: needs root, or the agent is not running (its bus
                     cannot be reached or nobody owns its name)
  141  PIPE_CLOSED   standard output was closed before the answer was written (`| head`); the
                     status a shell reports for a program SIGPIPE ended, without a traceback

Commands raise these errors (or the domain errors they name to `guarded`); `guarded`
prints one line naming the problem on standard error and returns the exit code, so every
command ends the same way whether it runs from `minormodectl` or from a test's parser.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from enum import IntEnum

from agent.core.parse import PolicyError

Command = Callable[[argparse.Namespace], int]


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    UNAVAILABLE = 3
    PIPE_CLOSED = 141  # 128 + SIGPIPE


# What each exit status means, for --help and the man page (agent/cli/manpage.py).
EXIT_MEANINGS = {
    Exit.OK: "ok",
    Exit.FAILED: "the check failed or the answer is no (a bad journal, a wrong code, the agent refused)",
    Exit.BAD_INPUT: "bad input (an argument, a file or a key, named on standard error); nothing changed",
    Exit.UNAVAILABLE: "not permitted here (needs root) or the agent is not running",
    Exit.PIPE_CLOSED: "standard output closed early (e.g. `| head`): the rest is dropped quietly",
}
EXIT_CODES_HELP = "exit status:\n" + "\n".join(
    f"  {code.value}  {text}" for code, text in EXIT_MEANINGS.items())


class CliError(Exception):
    """A problem named for the user; `exit_code` says which kind."""

    exit_code = Exit.BAD_INPUT


class BadInputError(CliError):
    exit_code = Exit.BAD_INPUT


class CheckFailedError(CliError):
    exit_code = Exit.FAILED


class NotPermittedError(CliError):
    exit_code = Exit.UNAVAILABLE


class NotRunningError(CliError):
    exit_code = Exit.UNAVAILABLE


def fail(message: str) -> None:
    print(f"minormodectl: {message}", file=sys.stderr)


def guarded(
    func: Command,
    *,
    bad_input: tuple[type[Exception], ...] = (),
    failed: tuple[type[Exception], ...] = (),
) -> Command:
    """`func` with its expected errors turned into a message and an exit code: CliError by
    its kind, a policy's problems as the parser wrote them (file and line), `bad_input` and
    `failed` (a module's own domain errors) as 2 and 1, and a refused file as 3."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except CliError as exc:
            fail(str(exc))
            return exc.exit_code
        except PolicyError as exc:
            print(str(exc), file=sys.stderr)
            return Exit.BAD_INPUT
        except bad_input as exc:
            fail(str(exc))
            return Exit.BAD_INPUT
        except failed as exc:
            fail(str(exc))
            return Exit.FAILED
        except PermissionError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror}; run as root")
            return Exit.UNAVAILABLE

    return run
