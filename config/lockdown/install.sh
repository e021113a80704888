#!/usr/bin/env bash
# Install the console and debug lockdown into a root file system (the image's, or a test's):
#   config/lockdown/install.sh ROOT CHILD...
# copies etc/ (logind, systemd manager, the child's user manager, sysctl, polkit), masks every
# unit in masked-units.txt (a symlink to /dev/null in ROOT/etc/systemd/system) and the user
# manager's environment.d generator, and puts each CHILD account (which must exist in
# ROOT/etc/passwd) in the group the polkit rule refuses, minormode-child. Run it after the
# child's account is made. Needs root (groupadd --root
# chroots). `minormodectl lockdown check --root ROOT` audits the result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 ROOT CHILD..." >&2; exit 2; }
root=$1; shift
[ -d "$root/etc" ] || { echo "$0: $root: no etc/ there, not a root file system" >&2; exit 2; }
for child in "$@"; do  # every account checked before anything is written
  grep -q "^$child:" "$root/etc/passwd" 2>/dev/null || { echo "$0: no account $child in $root/etc/passwd" >&2; exit 2; }
done

cp -r --no-preserve=ownership "$here/etc/." "$root/etc/"
chmod 0644 "$root"/etc/polkit-1/rules.d/10-minormode-child.rules "$root"/etc/polkit-1/rules.d/org.usbguard1.rules

install -d "$root/etc/systemd/system"
grep -v -e '^#' -e '^$' "$here/masked-units.txt" | while read -r unit; do
  ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done

# the child's user manager takes no environment from ~/.config/environment.d (the unit
# search path without the home is etc/systemd/system/user@.service.d, copied above)
install -d "$root/etc/systemd/user-environment-generators"
ln -sfn /dev/null "$root/etc/systemd/user-environment-generators/30-systemd-environment-d-generator"

groupadd --root "$root" --system -f minormode-child
for child in "$@"; do
  usermod --root "$root" --append --groups minormode-child "$child"
done
