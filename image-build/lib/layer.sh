#!/usr/bin/env bash
# The fast layer, run by build.sh with MM_* variables: unpack the cached base, add the
# kernel's modules, build and install the agent's Debian package (offline, from wheels: the
# venv in /opt/minormode, units, D-Bus, polkit), the lockdown and the factory settings; then make the boot and root partitions and
# the MBR image, and write manifest.json. Writes into $MM_OUT.
set -euo pipefail
: "${MM_REPO:?}" "${MM_HERE:?}" "${MM_VARIANT:?}" "${MM_FACTORY:?}" "${MM_POLICY:?}" "${MM_BASE_TAR:?}"
: "${MM_KERNEL_DIR:?}" "${MM_KVER:?}" "${MM_WHEEL:?}" "${MM_WHEELS:?}" "${MM_WORK:?}" "${MM_OUT:?}"
: "${MM_NAME:?}" "${MM_KEYS:?}" "${MM_FACTORY_CONF:?}"
# MM_DASHBOARD_CA: the dashboard's CA file (empty: the system's CAs)
note() { printf '    %s\n' "$*"; }

R=$MM_WORK/rootfs
K=$MM_KERNEL_DIR/root
mkdir -p "$R"
note "unpacking the base root filesystem"
tar -xpf "$MM_BASE_TAR" -C "$R" --numeric-owner

# Run a command in the image under qemu-user, in a private mount namespace so the proc,
# dev and tmp mounts it needs vanish with it and never touch the host's mount table. A clean
# environment: the host's PIP_* or LC_* settings must not leak into the image.
in_image() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  unshare --mount --propagation private -- sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" &&
    mount -t tmpfs tmpfs "$root/tmp" && exec chroot "$root" "$@"' sh "$R" "$@"
}

note "kernel modules $MM_KVER"
mkdir -p "$R/usr/lib/modules"
cp -a "$K/lib/modules/$MM_KVER" "$R/usr/lib/modules/"
depmod -b "$R" "$MM_KVER"

note "the agent: the Debian package minormode for arm64 (debian/rules, from the wheels above)"
# Built from a copy of the tree (dpkg-buildpackage writes into its source directory and next
# to it), cross-built: install_tree.py never runs the target's interpreter. The image then
# holds exactly what `apt install ./minormode_*_arm64.deb` gives an existing Raspberry Pi OS.
S=$MM_WORK/deb/minormode
mkdir -p "$S"
(cd "$MM_REPO" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$MM_REPO" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$S"
(cd "$S" && SOURCE_DATE_EPOCH=1700000000 MINORMODE_PYTHON=$MM_PY MINORMODE_WHEELS=$MM_WHEELS \
  dpkg-buildpackage -b -us -uc -aarm64 -d >"$MM_WORK/deb/build.log" 2>&1) \
  || { tail -40 "$MM_WORK/deb/build.log" >&2; echo "layer.sh: the package did not build (above)" >&2; exit 1; }
deb=$(ls "$MM_WORK"/deb/minormode_*_arm64.deb)
cp "$deb" "$MM_OUT/"
note "installing $(basename "$deb") with dpkg (its postinst under emulation: bytecode, units enabled)"
cp "$deb" "$R/root/"
in_image dpkg -i "/root/$(basename "$deb")" >/dev/null
rm -f "$R/root/$(basename "$deb")"
in_image /opt/minormode/venv/bin/python -c 'import agent.daemon, agent.firstboot' \
  || { echo "layer.sh: the agent does not import inside the image" >&2; exit 1; }
in_image /opt/minormode/venv/bin/python -c 'from agent.filter import fastpath; assert fastpath.load()' \
  || { echo "layer.sh: the DNS fast path does not load inside the image" >&2; exit 1; }

# Networking: systemd-networkd (DHCP on wired and Wi-Fi links, overlay/etc/systemd/network)
# hands the network's resolvers to systemd-resolved, which writes them to
# /run/systemd/resolve/resolv.conf for the DNS filter; everything else asks resolved's stub.
systemctl --root="$R" enable systemd-networkd.service systemd-resolved.service >/dev/null
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"

note "settings: factory, default policy, hostname, machine-id"
install -d -m 0755 "$R/etc/minormode"
install -m 0644 "$MM_FACTORY" "$R/etc/minormode/factory.toml"
install -m 0644 "$MM_POLICY" "$R/etc/minormode/policy.toml"
# The agent's settings: agent.conf (the package's), then its drop-ins, the image's and the
# manufacturer's.
install -m 0644 "$MM_HERE/agent.conf.d/10-image.conf" "$R/etc/minormode/agent.conf.d/10-image.conf"
install -m 0644 "$MM_FACTORY_CONF" "$R/etc/minormode/agent.conf.d/20-factory.conf"
if [ -n "${MM_DASHBOARD_CA:-}" ]; then
  install -m 0644 "$MM_DASHBOARD_CA" "$R/etc/minormode/dashboard-ca.pem"
fi
echo minormode-tablet > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tminormode-tablet\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
# "uninitialized": systemd treats the first boot as such (ConditionFirstBoot=yes holds)
echo uninitialized > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"

note "lockdown: no getty on serial or spare VTs, SysRq off, noexec child-writable mounts"
cp -a "$MM_HERE/overlay/." "$R/"
for unit in serial-getty@.service console-getty.service container-getty@.service debug-shell.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
for unit in ssh.service sshd.service; do
  [ ! -e "$R/usr/lib/systemd/system/$unit" ] || { echo "layer.sh: $unit is installed" >&2; exit 1; }
done

note "the child's account (no sudo, no admin groups)"
in_image useradd --create-home --uid 1000 --user-group --shell /bin/bash --comment Child child
in_image passwd --lock root >/dev/null
chmod 0750 "$R/home/child"

note "console, debug and polkit lockdown for the child (config/lockdown; audited by minormodectl lockdown check)"
"$R/usr/share/minormode/lockdown/install.sh" "$R" child

note "USBGuard configured before the first boot: the generated baseline rules, no plugdev IPC"
# hubs, keyboards and mice, plus what the policy's usb table allows; at the first boot the
# agent adds the devices present then (built-in, the touchscreen) through usbguard-dbus
PYTHONPATH=$MM_REPO "$MM_PY" -m agent.os.usbguard rules --policy "$MM_POLICY" > "$MM_WORK/usbguard-rules.conf"
"$R/usr/share/minormode/lockdown/install-usbguard.sh" "$R" "$MM_WORK/usbguard-rules.conf"

if [ "$MM_VARIANT" = test ]; then
  note "test variant: the QEMU guest test unit and scripts"
  install -d "$R/opt/minormode/qemu-test"
  cp -a "$MM_REPO/tests/qemu/guest/." "$R/opt/minormode/qemu-test/"
  install -m 0644 "$MM_REPO/tests/qemu/guest/minormode-qemu-test.service" "$R/etc/systemd/system/"
  # TCG on a loaded shared 2-core host runs the guest several times slower than a board:
  # the agent's start gets more than the release's 90 s before systemd calls it failed.
  install -d "$R/etc/systemd/system/minormode-agent.service.d"
  install -m 0644 "$MM_REPO/tests/qemu/guest/agent-start-timeout.conf" \
    "$R/etc/systemd/system/minormode-agent.service.d/qemu-test.conf"
  systemctl --root="$R" enable minormode-qemu-test.service >/dev/null
  # The agent's settings are the release's (the same agent.conf and drop-ins): the guest test
  # brings up the network's resolver itself (run-guest-tests), as DHCP would.
fi

note "the agent accepts its settings (agent.conf and agent.conf.d, checked by the image's agent)"
in_image /opt/minormode/venv/bin/python -m agent.daemon --config /etc/minormode/agent.conf --check-settings \
  >/dev/null || { echo "layer.sh: the agent refuses its settings in /etc/minormode/agent.conf{,.d} (above)" >&2; exit 1; }

note "boot files: kernel, initramfs, device trees, Raspberry Pi firmware"
B=$MM_WORK/boot
mkdir -p "$B"
cp "$K/boot/vmlinuz-$MM_KVER" "$B/vmlinuz"
"$MM_HERE/lib/initramfs.sh" "$K" "$MM_KVER" "$B/initrd.img"
cp "$K"/usr/lib/linux-image-"$MM_KVER"/broadcom/*.dtb "$B/"
cp "$K"/usr/lib/raspi-firmware/* "$B/"
cp "$MM_HERE/boot/config.txt" "$MM_HERE/boot/cmdline.txt" "$B/"
# what the boot partition shipped with, for the tamper check at each boot (agent/lockdown/boot.py)
install -d "$R/usr/lib/minormode"
PYTHONPATH=$MM_REPO python3 -m agent.lockdown.manifest --boot-files "$B" \
  --out "$R/usr/lib/minormode/boot-manifest.json"

note "lockdown audit of the finished root and boot files (minormodectl lockdown check)"
# the production line's check, run on what is about to become the image: any open item
# (a getty, a polkit grant, USBGuard's plugdev IPC, an edited command line...) fails the build
PYTHONPATH=$MM_REPO "$MM_PY" -m agent.cli lockdown check --root "$R" --boot "$B" \
  || { echo "layer.sh: the lockdown audit above found open items" >&2; exit 1; }

note "manifest"
MM_ROOT=$R MM_BOOT=$B MM_DEB=$deb python3 "$MM_HERE/lib/manifest.py" > "$MM_WORK/manifest.partial.json"

note "file systems: vfat boot, ext4 root, ext4 state (mkfs.ext4 -d, no loop mounts)"
# The agent's state (/var/lib/minormode: its database, journal, keys) has a partition of its
# own (issue 16): the child's files are on the root file system, so a child who fills the
# disk fills that one, and the agent still writes, restarts and records what happened.
# Only root writes there, so nothing is reserved (-m 0); etc/fstab mounts it (nofail).
boot_mb=256
state_mb=64
root_used_mb=$(du -smx "$R" | cut -f1)
root_mb=$(( root_used_mb * 5 / 4 + 256 ))
total_mb=$(( 1 + boot_mb + root_mb + state_mb ))
size_mb=1024
while [ $size_mb -lt $total_mb ]; do size_mb=$(( size_mb * 2 )); done  # SD images: a power of two
root_mb=$(( size_mb - 1 - boot_mb - state_mb ))
rm -f "$MM_WORK/boot.vfat"
mkfs.vfat -F 32 -n MMBOOT -C "$MM_WORK/boot.vfat" $(( boot_mb * 1024 )) >/dev/null
mcopy -s -i "$MM_WORK/boot.vfat" "$B"/* ::/
install -d -m 0700 "$MM_WORK/state"
mkfs.ext4 -q -L minormode-state -m 0 -d "$MM_WORK/state" -E root_owner=0:0 \
  "$MM_WORK/state.ext4" "${state_mb}M"
install -d -m 0700 "$R/var/lib/minormode"  # the mount point
mkfs.ext4 -q -L minormode-root -d "$R" -E root_owner=0:0 \
  "$MM_WORK/root.ext4" "${root_mb}M"

note "disk image: MBR, ${size_mb} MiB (boot ${boot_mb}, root ${root_mb}, state ${state_mb}; the root holds ${root_used_mb} MiB)"
img=$MM_OUT/$MM_NAME.img
rm -f "$img"
truncate -s "${size_mb}M" "$img"
sfdisk -q "$img" <<EOF
label: dos
unit: sectors
start=2048, size=$(( boot_mb * 2048 )), type=c, bootable
start=$(( 2048 + boot_mb * 2048 )), size=$(( root_mb * 2048 )), type=83
start=$(( 2048 + (boot_mb + root_mb) * 2048 )), type=83
EOF
dd if="$MM_WORK/boot.vfat" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$MM_WORK/root.ext4" of="$img" bs=1M seek=$(( 1 + boot_mb )) conv=notrunc,sparse status=none
dd if="$MM_WORK/state.ext4" of="$img" bs=1M seek=$(( 1 + boot_mb + root_mb )) conv=notrunc,sparse status=none
cp "$B/vmlinuz" "$B/initrd.img" "$B/bcm2837-rpi-3-b.dtb" "$MM_OUT/"
sha=$(sha256sum "$img" | cut -d' ' -f1)
python3 - "$MM_WORK/manifest.partial.json" "$MM_OUT/manifest.json" "$img" "$sha" "$size_mb" "$state_mb" <<'PY'
import json, os, sys
src, dst, img, sha, size_mb, state_mb = sys.argv[1:]
m = json.load(open(src))
m["image"] = {"file": os.path.basename(img), "sha256": sha, "size_bytes": int(size_mb) * 2**20,
              "partitions": [{"label": "MMBOOT", "type": "vfat", "mib": 256},
                             {"label": "minormode-root", "type": "ext4"},
                             {"label": "minormode-state", "type": "ext4", "mib": int(state_mb),
                              "mount": "/var/lib/minormode"}]}
m["cache_keys"] = dict(kv.split("=", 1) for kv in os.environ["MM_KEYS"].split())
json.dump(m, open(dst, "w"), indent=2, sort_keys=True)
PY
note "sha256 $sha"
