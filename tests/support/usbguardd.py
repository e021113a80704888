"""A real usbguard-daemon on umockdev test beds, and usbguard-dbus on a private bus
(FACTS.md: `umockdev-wrapper usbguard-daemon` with DeviceManagerBackend=umockdev;
python-dbusmock's polkitd template answering yes). Never the system service.

usbguard-daemon's IPC name is fixed ("usbguard"): one rig at a time on a machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.dev.devbus import PrivateBus, start_bus
from support.orphans import die_with_parent
from support.usbbeds import Bed, write_beds

DAEMON_CONF = """RuleFile={rules}
ImplicitPolicyTarget=block
PresentDevicePolicy=apply-policy
PresentControllerPolicy=apply-policy
InsertedDevicePolicy=apply-policy
DeviceManagerBackend=umockdev
IPCAllowedUsers=root
IPCAccessControlFiles={ipc}/
AuditBackend=FileAudit
AuditFilePath={audit}
"""
_LOG_LINE = re.compile(r"^\[(\d+\.\d+)\] \(A\) .*device\.system_name='([^']+)' target\.new='(\w+)'")


@dataclass
class UsbGuardRig:
    directory: Path
    bus: PrivateBus
    daemon: subprocess.Popen[bytes]
    dbus: subprocess.Popen[bytes]
    beds: dict[str, Path]
    plugged_at: dict[str, float] = field(default_factory=dict)  # bed name -> time.time() of the link

    @property
    def device_dir(self) -> Path:
        return self.directory / "devices"

    @property
    def rule_file(self) -> Path:
        return self.directory / "rules.conf"

    def plug(self, bed: Bed) -> None:
        """Hot-plug: hard-link the bed's file into the watched directory (atomic)."""
        src = self.beds[bed.name]
        self.plugged_at[bed.name] = time.time()
        os.link(src, self.device_dir / src.name)

    def decisions(self, bed: Bed) -> list[tuple[float, str]]:
        """(wall time, target) of every policy decision the daemon logged for the bed."""
        out = []
        for line in (self.directory / "daemon.log").read_text(errors="replace").splitlines():
            m = _LOG_LINE.match(line)
            if m and m.group(2) == bed.sysfs and "Policy.Device.Update" in line:
                out.append((float(m.group(1)), m.group(3)))
        return out

    def stop(self) -> None:
        for proc in (self.dbus, self.daemon):
            if proc.poll() is None:
                proc.terminate()
        for proc in (self.dbus, self.daemon):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.bus.stop()


def _wait(what: str, ready: object, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout} s: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)


def start_usbguard(directory: Path, present: tuple[Bed, ...] = (), rules: str = "",
                   bus: PrivateBus | None = None) -> UsbGuardRig:
    """The daemon with `present` plugged in before it starts and `rules` in its RuleFile;
    usbguard-dbus on `bus` (a new private bus when None; the rig stops it either way)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    beds = write_beds(directory / "beds")
    devices = directory / "devices"
    devices.mkdir()
    os.link(beds["root"], devices / beds["root"].name)
    for bed in present:
        os.link(beds[bed.name], devices / beds[bed.name].name)
    (directory / "ipc").mkdir()
    rule_file = directory / "rules.conf"
    rule_file.write_text(rules)
    rule_file.chmod(0o600)
    conf = directory / "usbguard-daemon.conf"
    conf.write_text(DAEMON_CONF.format(rules=rule_file, ipc=directory / "ipc", audit=directory / "audit.log"))
    conf.chmod(0o600)
    log_path = directory / "daemon.log"
    env = {**os.environ, "USBGUARD_UMOCKDEV_DEVICEDIR": str(devices)}
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(die_with_parent(["umockdev-wrapper", "usbguard-daemon", "-k", "-P", "-c",
                                                   str(conf)]),
                                  env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait("usbguard-daemon", lambda: subprocess.run(["usbguard", "list-rules"], capture_output=True,
                                                        check=False).returncode == 0, daemon, log_path)
        bus = bus or start_bus()
        polkit = bus.start_mock("polkitd", name="org.freedesktop.PolicyKit1")
        del polkit
        subprocess.run(["dbus-send", f"--bus={bus.address}", "--print-reply", "--dest=org.freedesktop.PolicyKit1",
                        "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.DBus.Mock.AllowUnknown",
                        "boolean:true"], check=True, capture_output=True)
        dbus_log = directory / "usbguard-dbus.log"
        with dbus_log.open("wb") as log:
            dbus = subprocess.Popen(die_with_parent(["usbguard-dbus", "--system"]),
                                    env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        bus.wait_for_name("org.usbguard1", dbus)
        _wait("usbguard-dbus connected to the daemon", lambda: subprocess.run(
            ["dbus-send", f"--bus={bus.address}", "--print-reply", "--dest=org.usbguard1", "/org/usbguard1/Policy",
             "org.usbguard.Policy1.listRules", "string:"], capture_output=True, check=False).returncode == 0,
            dbus, dbus_log)
    except BaseException:
        daemon.terminate()
        daemon.wait()
        if bus is not None:
            bus.stop()
        raise
    return UsbGuardRig(directory, bus, daemon, dbus, beds)
