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
# the dependency closure of the wanted modules, from modules.dep (a module the kernel has
# built in is skipped: bookworm-backports' 6.12 builds virtio_pci in)
closure=$(python3 - "$moddir/modules.dep" "$moddir/modules.builtin" $wanted <<'PY'
import sys
deps = {}
for line in open(sys.argv[1]):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
stem = lambda p: p.rsplit("/", 1)[1].split(".ko")[0].replace("-", "_")
by_name = {stem(p): p for p in deps}
builtin = {stem(line.strip()) for line in open(sys.argv[2]) if line.strip()}
seen, order = set(), []
def visit(p):
    if p in seen:
        return
    seen.add(p)
    for d in deps[p]:
        visit(d)
    order.append(p)
for name in sys.argv[3:]:
    key = name.replace("-", "_")
    if key in builtin:
        continue
    if key not in by_name:
        sys.exit(f"initramfs: module {name} not found in {sys.argv[1]}")
    visit(by_name[key])
print("\n".join(order))
PY
)
# busybox's insmod reads plain .ko files: compressed modules (6.12 ships .ko.xz) are
# decompressed on the host, and modules.load names what is in the initramfs
loaded=""
for rel in $closure; do
  plain=${rel%.xz}; plain=${plain%.zst}
  mkdir -p "$work/lib/modules/$kver/$(dirname "$rel")"
  case $rel in
    *.xz) xz -dc "$moddir/$rel" > "$work/lib/modules/$kver/$plain" ;;
    *.zst) zstd -qdc "$moddir/$rel" > "$work/lib/modules/$kver/$plain" ;;
    *) cp "$moddir/$rel" "$work/lib/modules/$kver/$rel" ;;
  esac
  loaded="$loaded$plain
"
done
cp "$moddir"/modules.{order,builtin,builtin.modinfo} "$work/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$work" "$kver"
printf %s "$loaded" > "$work/modules.load"
(cd "$work" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --owner=0:0) | gzip -9n > "$out"
