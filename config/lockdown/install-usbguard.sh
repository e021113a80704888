#!/usr/bin/env bash
# Configure Debian's usbguard in a root file system before its first boot (issue 18 item 1):
#   config/lockdown/install-usbguard.sh ROOT RULES
# installs usbguard/usbguard-daemon.conf and RULES (the generated baseline:
# `python -m agent.os.usbguard rules --policy FILE`) as /etc/usbguard/rules.conf, both 0600;
# removes the package's IPC grant to plugdev (IPCAccessControl.d/:plugdev, made by its
# postinst); enables usbguard.service and usbguard-dbus.service (the agent drives the policy
# through the latter). The package's polkit rule is hidden by config/lockdown's
# etc/polkit-1/rules.d/org.usbguard1.rules (install.sh); adds restart drop-ins to both units
# (usbguard/*.service.d). `minormodectl lockdown check` audits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 ROOT RULES" >&2; exit 2; }
root=$1 rules=$2
[ -d "$root/etc/usbguard" ] || { echo "$0: $root: usbguard is not installed there" >&2; exit 2; }
[ -s "$rules" ] || { echo "$0: $rules: no rules" >&2; exit 2; }
install -m 0600 "$here/usbguard/usbguard-daemon.conf" "$root/etc/usbguard/usbguard-daemon.conf"
install -m 0600 "$rules" "$root/etc/usbguard/rules.conf"
rm -f "$root/etc/usbguard/IPCAccessControl.d/:plugdev"
install -d "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/systemd/system/basic.target.wants"
ln -sfn /lib/systemd/system/usbguard.service "$root/etc/systemd/system/basic.target.wants/usbguard.service"
ln -sfn /lib/systemd/system/usbguard-dbus.service \
  "$root/etc/systemd/system/multi-user.target.wants/usbguard-dbus.service"
# restarts spaced out and never given up (the package's 100 ms loops where the daemon cannot start)
for unit in usbguard.service usbguard-dbus.service; do
  install -d "$root/etc/systemd/system/$unit.d"
  install -m 0644 "$here/usbguard/$unit.d/restart.conf" "$root/etc/systemd/system/$unit.d/minormode-restart.conf"
done
