"""A private D-Bus for development and tests: a dbus-daemon plus python-dbusmock services.

There is no logind on a developer's machine (or in CI, where PID 1 is not systemd), so the
development mode and the tests start their own bus that looks like the system bus (the same
default-deny policy, plus the agent's own policy file) and a fake logind from Debian's
python3-dbusmock (run with Debian's /usr/bin/python3: it needs dbus-python and GLib, which
the virtual environment does not have). Everything is stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PYTHON = "/usr/bin/python3"
AGENT_POLICY = Path(__file__).resolve().parents[2] / "config" / "dbus" / "org.minormode.Agent1.conf"

_SYSTEM_LIKE = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{bus_type}</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {owner}
  {include}
</busconfig>
"""


# The fake services (logind, notifications) run as the developer or root.
_OWNER = """<policy user="{uid}">
    <allow own="*"/>
    <allow send_type="method_call"/>
  </policy>"""

_PERMISSIVE = """
  <policy context="default">
    <allow own="*"/>
    <allow send_type="method_call"/>
  </policy>"""


# The bus and its mocks die with whoever started them, even by kill -9 (the chaos tests kill
# the development agent a hundred times; each run used to leave its dbus-daemon behind).
# util-linux's setpriv sets PR_SET_PDEATHSIG and execs (a preexec_fn could deadlock in a
# threaded parent). The signal follows the spawning *thread*: the development session
# starts its bus in the loop's default executor, whose threads live until the loop closes.
WITH_PARENT = ("setpriv", "--pdeathsig", "TERM", "--")
# And each in a process group of its own: a terminal's Ctrl-C goes to the whole foreground
# group, and a bus that died with the agent's SIGINT left the agent's orderly stop writing
# to a dead socket (a traceback at every Ctrl-C of scripts/run-dev); the agent stops them.
OWN_GROUP = 0  # subprocess.Popen(process_group=0): setpgid(0, 0) in the child, no preexec_fn


# The agent's own sd_notify channel is not theirs: dbus-daemon sends READY=1 to any
# NOTIFY_SOCKET it inherits, which a reader of the agent's messages took for the agent's.
_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}


class DevBusError(RuntimeError):
    """The private bus or a mock service did not start."""


@dataclass
class PrivateBus:
    """One private dbus-daemon; `address` goes to DBUS_SYSTEM_BUS_ADDRESS or a MessageBus."""

    directory: Path
    address: str
    process: subprocess.Popen[bytes]
    mocks: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _own_directory: bool = True

    def start_mock(self, template: str, *, system: bool = True, parameters: str | None = None,
                   name: str | None = None, timeout: float = 15.0) -> subprocess.Popen[bytes]:
        """Start `python3 -m dbusmock --template TEMPLATE` on this bus; wait until its name is owned."""
        bus_flag = "--system" if system else "--session"
        cmd = [DEBIAN_PYTHON, "-m", "dbusmock", bus_flag, "--template", template]
        if parameters is not None:
            cmd += ["--parameters", parameters]
        env = _environment()
        env["DBUS_SYSTEM_BUS_ADDRESS" if system else "DBUS_SESSION_BUS_ADDRESS"] = self.address
        env.pop("PYTHONPATH", None)
        log = (self.directory / f"{template}.log").open("wb")
        proc = subprocess.Popen([*WITH_PARENT, *cmd], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, process_group=OWN_GROUP)
        log.close()
        self.mocks.append(proc)
        wanted = name or _TEMPLATE_NAMES.get(template)
        if wanted is not None:
            self.wait_for_name(wanted, proc, timeout)
        return proc

    def wait_for_name(self, name: str, proc: subprocess.Popen[bytes] | None = None,
                      timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise DevBusError(f"{name}: the mock exited with {proc.returncode}; see {self.directory}")
            out = subprocess.run(
                ["dbus-send", f"--bus={self.address}", "--print-reply", "--dest=org.freedesktop.DBus",
                 "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
                capture_output=True, text=True, check=False)
            if "boolean true" in out.stdout:
                return
            time.sleep(0.05)
        raise DevBusError(f"{name} did not appear on {self.address} within {timeout} s")

    def stop(self) -> None:
        for proc in [*self.mocks, self.process]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.mocks, self.process]:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


_TEMPLATE_NAMES = {"logind": "org.freedesktop.login1", "polkitd": "org.freedesktop.PolicyKit1",
                   "notification_daemon": "org.freedesktop.Notifications"}


def start_bus(*, system: bool = True, agent_policy: Path | None = AGENT_POLICY,
              permissive: bool = False, owner_may_call: bool = True, directory: Path | None = None,
              timeout: float = 10.0) -> PrivateBus:
    """Start a private dbus-daemon with a system-bus-like policy (default deny, the agent's
    policy file included). `permissive` lets anyone call anything: for tests proving the
    agent's own uid checks hold even without the bus policy. `owner_may_call=False` drops
    the rule that lets this process's user own and call anything (the fake services need
    it), so only the included policy file decides: for tests of that file itself.

    The directory is world-traversable so clients running as other users (the child,
    `nobody`) can reach the socket; the bus policy, not the file mode, decides what they may do.
    """
    own = directory is None
    where = Path(tempfile.mkdtemp(prefix="minormode-bus-")) if directory is None else directory
    where.chmod(0o755)
    socket = where / "bus.sock"
    include = f"<include>{agent_policy}</include>" if agent_policy is not None else ""
    if permissive:
        include += _PERMISSIVE
    config = where / "bus.conf"
    config.write_text(_SYSTEM_LIKE.format(bus_type="system" if system else "session",
                                          socket=socket, include=include,
                                          owner=_OWNER.format(uid=os.getuid()) if owner_may_call else ""))
    log = (where / "dbus-daemon.log").open("wb")
    proc = subprocess.Popen([*WITH_PARENT, "dbus-daemon", "--nofork", "--nopidfile",
                             f"--config-file={config}"], env=_environment(),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            process_group=OWN_GROUP)
    log.close()
    deadline = time.monotonic() + timeout
    while not socket.exists():
        failure = None
        if proc.poll() is not None:
            failure = (f"dbus-daemon exited with {proc.returncode}: "
                       f"{(where / 'dbus-daemon.log').read_text()}")
        elif time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            failure = f"dbus-daemon did not create {socket} within {timeout} s"
        if failure is not None:
            if own:
                shutil.rmtree(where, ignore_errors=True)
            raise DevBusError(failure)
        time.sleep(0.01)
    socket.chmod(0o666)
    return PrivateBus(where, f"unix:path={socket}", proc, _own_directory=own)


def add_session(bus: PrivateBus, session_id: str, uid: int, user: str, *,
                seat: str = "seat0", active: bool = True) -> str:
    """Add a session to the running fake logind (dbusmock's AddSession); its object path."""
    out = subprocess.run(
        ["dbus-send", f"--bus={bus.address}", "--print-reply", "--dest=org.freedesktop.login1",
         "/org/freedesktop/login1", "org.freedesktop.DBus.Mock.AddSession",
         f"string:{session_id}", f"string:{seat}", f"uint32:{uid}", f"string:{user}",
         f"boolean:{'true' if active else 'false'}"],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise DevBusError(f"AddSession {session_id}: {out.stderr.strip()}")
    return f"/org/freedesktop/login1/session/{session_id}"


def start_dev_logind(child_uid: int, child_name: str = "child",
                     session_id: str = "c1") -> PrivateBus:
    """The development mode's bus: a fake logind with one active session of the child."""
    bus = start_bus()
    try:
        bus.start_mock("logind")
        add_session(bus, session_id, child_uid, child_name)
    except DevBusError:
        bus.stop()
        raise
    return bus


_LOCKER = ("objects['/org/freedesktop/login1/session/' + args[0]].UpdateProperties("
           "'org.freedesktop.login1.Session', {'LockedHint': dbus.Boolean(True)})")


def emulate_screen_locker(bus: PrivateBus) -> None:
    """Make the fake logind's LockSession(id) set that session's LockedHint, as a real
    screen locker does after logind's Lock signal (dbusmock's LockSession only logs the call)."""
    out = subprocess.run(
        ["dbus-send", f"--bus={bus.address}", "--print-reply", "--dest=org.freedesktop.login1",
         "/org/freedesktop/login1", "org.freedesktop.DBus.Mock.AddMethod",
         "string:org.freedesktop.login1.Manager", "string:LockSession", "string:s", "string:",
         f"string:{_LOCKER}"],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise DevBusError(f"scripting LockSession: {out.stderr.strip()}")
