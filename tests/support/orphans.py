"""Servers a test starts die with the test run.

A run killed from outside (a CI timeout, a SIGKILL) never reaches its fixtures' teardown,
and the dashboards and agents it started would keep eating this 2-core machine's CPU in
the next run (it happened: a later full run took twice as long). `die_with_parent` puts
util-linux's `setpriv --pdeathsig TERM` in front of a command, so the kernel sends the
server SIGTERM when the process that spawned it goes, whatever the way it goes. This is
done by an exec'd helper rather than a `preexec_fn` because the test process has threads
(a forked child running Python before exec can deadlock on their locks).
PR_SET_PDEATHSIG follows the spawning *thread*: spawn from the test's own thread, not from
a worker thread that ends before the server should.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from agent.dev.devbus import WITH_PARENT


def die_with_parent(command: Sequence[str]) -> list[str]:
    """`command`, run so that it is sent SIGTERM when its parent dies."""
    return [*WITH_PARENT, *command]


def stop(process: subprocess.Popen[Any], grace: float = 30) -> None:
    """End a process the test started, by its PID: SIGTERM, `grace` seconds to exit, then
    SIGKILL (and reap it either way)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
