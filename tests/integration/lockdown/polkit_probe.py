"""Run inside `unshare --mount`: the real polkitd on a private system bus, reading only the
rules given, answering for a child account (in minormode-child) and another account that
exist only in this mount namespace. Prints {action: [child's pkcheck exit, other's]}.

    polkit_probe.py WORKDIR RULES_DIR ACTION...

WORKDIR/actions, if there, stands in for /usr/share/polkit-1/actions (actions under test).

pkcheck exits 0 (authorized), 1 (not authorized), 2 (authorized after authentication)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_UID, OTHER_UID, GROUP_GID = 64100, 64102, 64101
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
"""


def bind(source: Path, target: str) -> None:
    subprocess.run(["mount", "--bind", str(source), target], check=True)


def wait_for(predicate: object, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            sys.exit(f"polkit_probe: {what} not ready after {seconds} s")
        time.sleep(0.05)


def main() -> int:
    work, rules, actions = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    (work / "passwd").write_text(Path("/etc/passwd").read_text()
                                 + f"kidtest:x:{CHILD_UID}:{CHILD_UID}::/nonexistent:/usr/sbin/nologin\n"
                                 + f"othertest:x:{OTHER_UID}:{OTHER_UID}::/nonexistent:/usr/sbin/nologin\n")
    (work / "group").write_text(Path("/etc/group").read_text() + f"kidtest:x:{CHILD_UID}:\n"
                                + f"othertest:x:{OTHER_UID}:\nminormode-child:x:{GROUP_GID}:kidtest\n")
    bind(work / "passwd", "/etc/passwd")
    bind(work / "group", "/etc/group")
    empty = work / "empty-rules"
    empty.mkdir()
    bind(rules, "/etc/polkit-1/rules.d")
    bind(empty, "/usr/share/polkit-1/rules.d")  # only the rules under test
    if (work / "actions").is_dir():  # the system's actions and those under test
        bind(work / "actions", "/usr/share/polkit-1/actions")
    # polkitd drops to its own user: the bus socket must sit where that user can reach it
    # (pytest's tmp directories are 0700 all the way up)
    sockdir = Path(tempfile.mkdtemp(prefix="mm-polkit-bus-"))
    sockdir.chmod(0o755)
    socket = sockdir / "bus"
    (work / "bus.conf").write_text(BUS_CONFIG.format(socket=socket))
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket}"}
    death = ["setpriv", "--pdeathsig", "KILL", "--"]
    procs = [subprocess.Popen([*death, "dbus-daemon", "--nofork", f"--config-file={work / 'bus.conf'}"])]
    try:
        wait_for(socket.exists, "dbus-daemon")
        log = (work / "polkitd.log").open("w")
        procs.append(subprocess.Popen([*death, "/usr/lib/polkit-1/polkitd", "--no-debug"], env=env,
                                      stdout=log, stderr=log))
        wait_for(lambda: subprocess.run(
            ["gdbus", "introspect", "--system", "-d", "org.freedesktop.PolicyKit1",
             "-o", "/org/freedesktop/PolicyKit1/Authority"], check=False, env=env,
             capture_output=True).returncode == 0,
            "polkitd")
        subjects = []
        for uid, groups in ((CHILD_UID, "--init-groups"), (OTHER_UID, "--clear-groups")):
            proc = subprocess.Popen([*death, "setpriv", f"--reuid={uid}", f"--regid={uid}", groups,
                                     "sleep", "600"])
            procs.append(proc)
            status = Path(f"/proc/{proc.pid}/status")
            wait_for(lambda s=status, u=uid: f"\t{u}\t" in s.read_text().split("Uid:")[1].split("\n")[0],
                     "the subject process")
            subjects.append(proc.pid)
        answers = {action: [subprocess.run(["pkcheck", "--action-id", action, "--process", str(pid)],
                                           check=False, env=env, capture_output=True).returncode
                            for pid in subjects]
                   for action in actions}
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait()
        shutil.rmtree(sockdir, ignore_errors=True)
    print(json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
