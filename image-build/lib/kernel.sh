#!/usr/bin/env bash
# The kernel layer: Debian's arm64 kernel from bookworm-backports (6.12: bookworm's own 6.1
# has no vm.memfd_noexec, so a child could fexecve() a program written to a memfd; the
# sysctl exists from 6.3), the Raspberry Pi firmware and a static arm64 busybox (for the
# initramfs), unpacked with --variant=extract (~15 s): installing linux-image-arm64 under
# emulation would run mkinitramfs for ~12 min.
# Usage: kernel.sh OUT_DIR MIRROR SECURITY_MIRROR  (writes OUT_DIR/root, OUT_DIR/packages.tsv)
set -euo pipefail
out=$1 mirror=$2 security=$3
mkdir -p "$out/root"
mmdebstrap --arch=arm64 --variant=extract --mode=root \
  --components=main,non-free-firmware \
  --include=linux-image-arm64/bookworm-backports,raspi-firmware,busybox-static \
  --skip=cleanup/apt \
  bookworm "$out/root" \
  "deb $mirror bookworm main non-free-firmware" \
  "deb $mirror bookworm-updates main non-free-firmware" \
  "deb $mirror bookworm-backports main non-free-firmware" \
  "deb $security bookworm-security main non-free-firmware"
# the versions of what was unpacked (dependencies too), for the manifest
for deb in "$out"/root/var/cache/apt/archives/*.deb; do
  dpkg-deb -f "$deb" Package Version | paste -sd'\t'
done | sed 's/^Package: //; s/\tVersion: /\t/' | sort > "$out/packages.tsv"
rm -rf "$out"/root/var/cache/apt/archives/*.deb
kver=$(basename "$(ls -d "$out"/root/lib/modules/*-arm64 | head -1)")
echo "$kver" > "$out/kernel-version"
depmod -b "$out/root" "$kver"
