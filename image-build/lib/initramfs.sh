#!/usr/bin/env bash
# A tiny initramfs: static busybox, the modules needed to reach an ext4 root on virtio
# (QEMU virt) or the SD card (Raspberry Pi), and an init that mounts the root by its label
# and hands over to systemd. Built on the host in ~1 s; no mkinitramfs under emulation.
# Usage: initramfs.sh KERNEL_ROOT KVER OUT.cpio.gz
set -euo pipefail
kroot=$1 kver=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,sbin,dev,proc,sys,newroot,lib/modules/"$kver"}
cp "$kroot/bin/busybox" "$work/bin/busybox"
ln -s busybox "$work/bin/sh"
# the kernel's module autoloader runs /sbin/modprobe (kept after switch_root: do not change it)
ln -s ../bin/busybox "$work/sbin/modprobe"
cp "$here/initramfs-init" "$work/init"
chmod 0755 "$work/init"
moddir="$kroot/lib/modules/$kver"
wanted="virtio_blk virtio_pci virtio_mmio ext4 crc32c_generic libcrc32c sdhci-iproc bcm2835"
# the dependency closure of the wanted modules, from modules.dep
closure=$(python3 - "$moddir/modules.dep" $wanted <<'PY'
import sys
deps = {}
for line in open(sys.argv[1]):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
by_name = {p.rsplit("/", 1)[1].split(".ko")[0].replace("-", "_"): p for p in deps}
seen, order = set(), []
def visit(p):
    if p in seen:
        return
    seen.add(p)
    for d in deps[p]:
        visit(d)
    order.append(p)
for name in sys.argv[2:]:
    key = name.replace("-", "_")
    if key not in by_name:
        sys.exit(f"initramfs: module {name} not found in {sys.argv[1]}")
    visit(by_name[key])
print("\n".join(order))
PY
)
for rel in $closure; do
  mkdir -p "$work/lib/modules/$kver/$(dirname "$rel")"
  cp "$moddir/$rel" "$work/lib/modules/$kver/$rel"
done
cp "$moddir"/modules.{order,builtin,builtin.modinfo} "$work/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$work" "$kver"
echo "$closure" > "$work/modules.load"
(cd "$work" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --owner=0:0) | gzip -9n > "$out"
