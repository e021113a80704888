#!/usr/bin/env bash
# The slow layer: an arm64 Debian bookworm root filesystem with packages.txt installed,
# written as a tar by mmdebstrap (dpkg runs under qemu-user emulation: ~2-3 min).
# Usage: base.sh PACKAGES_FILE OUT.tar MIRROR SECURITY_MIRROR
set -euo pipefail
packages_file=$1 out=$2 mirror=$3 security=$4
include=$(sed 's/#.*//' "$packages_file" | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')
mmdebstrap --arch=arm64 --variant=minbase --mode=root --format=tar \
  --components=main,non-free-firmware \
  --include="$include" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$out" \
  "deb $mirror bookworm main non-free-firmware" \
  "deb $mirror bookworm-updates main non-free-firmware" \
  "deb $security bookworm-security main non-free-firmware"
