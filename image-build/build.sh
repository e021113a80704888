#!/usr/bin/env bash
# Build a flashable arm64 image of a minormode tablet from Debian bookworm.
#
#   image-build/build.sh [--variant release|test] [--out DIR] [--factory FILE] [--cache DIR]
#
# Output in DIR (default image-build/out): minormode-VARIANT.img (MBR: FAT boot partition
# with kernel, initramfs, device trees and Raspberry Pi firmware; ext4 root labelled
# minormode-root), vmlinuz + initrd.img (to boot the image in QEMU) and manifest.json (every
# Debian and Python package with its version, the agent's version, the kernel, the image's
# sha256). See image-build/README.md. Needs root (mmdebstrap, chroot, file ownership).
#
# Layers, each cached in CACHE (default /var/cache/minormode-image) under a hash of its inputs:
#   base-KEY.tar     packages.txt installed by mmdebstrap under emulation   (slow, ~3 min)
#   kernel-KEY/      kernel + firmware + busybox unpacked, not installed     (~15 s)
#   wheels-KEY/      arm64 wheels of the agent's Python dependencies         (~10 s)
#   image-KEY/       the finished image: the agent's Debian package (built from debian/,
#                    installed with dpkg), lockdown, settings                (~1-2 min)
# An agent code change rebuilds only the last layer.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
variant=release
out=$here/out
factory=$here/factory.toml
cache=${MINORMODE_IMAGE_CACHE:-/var/cache/minormode-image}
mirror=${MINORMODE_MIRROR:-http://deb.debian.org/debian}
security=${MINORMODE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "build.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --variant) variant=${2:?--variant needs release or test}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --factory) factory=${2:?--factory needs a file}; shift 2 ;;
    --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done
case $variant in release|test) ;; *) die "--variant $variant: must be release or test" ;; esac
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root, chroot, file ownership)"
[ -f "$factory" ] || die "--factory $factory: no such file"
factory=$(cd "$(dirname "$factory")" && pwd)/$(basename "$factory")
for tool in mmdebstrap update-binfmts depmod cpio sfdisk mkfs.ext4 mkfs.vfat mcopy unshare \
            aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup (config/deps/apt-image.txt)"
done
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

steps=7 step=0
progress() { step=$((step + 1)); printf '\n==> [%d/%d, %ds] %s\n' "$step" "$steps" "$SECONDS" "$*"; }
note() { printf '    %s\n' "$*"; }
hash_files() { (for f in "$@"; do printf '%s\0' "${f#"$repo"/}"; cat "$f"; done) | sha256sum | cut -c1-16; }
hash_text() { printf '%s' "$*" | sha256sum | cut -c1-16; }

# One build at a time per cache: a second one waits, then finds the layers made.
exec 9>"$cache/.lock"
flock 9

progress "factory settings and emulation"
band=$(PYTHONPATH=$repo python3 -m agent.factory "$factory" default_age_band) \
  || die "factory settings $factory are not valid (see above)"
policy=$repo/config/policies/$band.toml
[ -f "$policy" ] || die "no default policy for age band $band ($policy)"
note "factory: $factory (age band $band, policy $(basename "$policy"))"
work=$(mktemp -d /var/tmp/minormode-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The agent's settings from the factory's: the DNS filter's resolvers, the dashboard (or
# offline only), said here on every build, cached or not.
dashboard_ca=$(PYTHONPATH=$repo python3 -m agent.factory "$factory" dashboard_ca)
if [ -n "$dashboard_ca" ]; then
  case $dashboard_ca in /*) ;; *) dashboard_ca=$(dirname "$factory")/$dashboard_ca ;; esac
  [ -f "$dashboard_ca" ] || die "dashboard_ca $dashboard_ca (factory settings): no such file"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$dashboard_ca" \
    || die "dashboard_ca $dashboard_ca: not a PEM certificate file"
fi
PYTHONPATH=$repo python3 "$here/lib/agent_conf.py" "$factory" "$work/20-factory.conf" \
  || die "cannot make the agent's settings from $factory (see above)"
if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
  note "mounting binfmt_misc"
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
  || die "qemu-aarch64 is not registered with binfmt_misc (install qemu-user-static, binfmt-support)"
note "qemu-aarch64 registered with binfmt_misc"

progress "base root filesystem (mmdebstrap, Debian packages)"
# The test variant adds packages-test.txt (its benchmarks' tools), so it has a base of its own.
package_lists=("$here/packages.txt")
[ "$variant" = test ] && package_lists+=("$here/packages-test.txt")
base_key=$(hash_files "${package_lists[@]}" "$here/lib/base.sh"; hash_text "$mirror $security")
base_key=$(hash_text "$base_key")
base_tar=$cache/base-$base_key.tar
if [ -f "$base_tar" ]; then
  note "cached: $base_tar"
else
  note "building $base_tar (dpkg under emulation: a few minutes)"
  packages=$(mktemp)
  cat "${package_lists[@]}" > "$packages"
  "$here/lib/base.sh" "$packages" "$base_tar.part" "$mirror" "$security"
  rm -f "$packages"
  mv "$base_tar.part" "$base_tar"
fi

progress "kernel, Raspberry Pi firmware, busybox (unpacked, not installed)"
kernel_key=$(hash_text "$(hash_files "$here/lib/kernel.sh")" "$mirror $security")
kernel_dir=$cache/kernel-$kernel_key
if [ -f "$kernel_dir/kernel-version" ]; then
  note "cached: $kernel_dir"
else
  rm -rf "$kernel_dir.part"
  "$here/lib/kernel.sh" "$kernel_dir.part" "$mirror" "$security"
  rm -rf "$kernel_dir"
  mv "$kernel_dir.part" "$kernel_dir"
fi
kver=$(cat "$kernel_dir/kernel-version")
note "kernel $kver"

progress "the agent: wheel and its arm64 dependencies"
py=${PYTHON:-python3}
[ -x "$repo/.venv/bin/python" ] && py=$repo/.venv/bin/python
mapfile -t agent_sources < <(cd "$repo" && find agent -name '*.py' -o -name '*.c' -o -name '*.po' | sort)
agent_key=$(hash_files "$repo/pyproject.toml" "$repo/setup.py" "${agent_sources[@]/#/$repo/}")
SOURCE_DATE_EPOCH=1700000000 "$py" -m pip wheel -q --no-deps -w "$work/agent" "$repo" >/dev/null
wheel=$(ls "$work"/agent/minormode-*.whl)
agent_version=$(basename "$wheel" | cut -d- -f2)
note "agent $agent_version: $(basename "$wheel")"
wheels_key=$(hash_files "$repo/pyproject.toml")
wheels_dir=$cache/wheels-$wheels_key
if [ -d "$wheels_dir" ]; then
  note "cached: $wheels_dir"
else
  rm -rf "$wheels_dir.part"
  "$py" -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_36_aarch64 --platform manylinux2014_aarch64 \
    -d "$wheels_dir.part" "$wheel"
  rm -f "$wheels_dir.part"/minormode-*.whl
  mv "$wheels_dir.part" "$wheels_dir"
fi
note "$(ls "$wheels_dir" | wc -l) dependency wheels"

progress "image layer: agent, units, lockdown, settings ($variant)"
layer_inputs=("$here/build.sh" "$here"/lib/* "$factory" "$policy" "$repo/config/agent.conf" "$here"/agent.conf.d/*)
[ -z "$dashboard_ca" ] || layer_inputs+=("$dashboard_ca")
mapfile -t config_files < <(find "$repo/config/sysctl.d" "$repo/config/dbus" "$repo/config/udisks2" "$repo/config/lockdown" "$repo/config/polkit" -type f | sort)
layer_inputs+=("${config_files[@]}")
mapfile -t unit_files < <(find "$repo/systemd" "$repo/debian" -type f | sort)
mapfile -t overlay_files < <(find "$here/overlay" -type f | sort)
layer_inputs+=("${unit_files[@]}" "${overlay_files[@]}")
if [ "$variant" = test ]; then
  mapfile -t guest_files < <(find "$repo/tests/qemu/guest" -type f | sort)
  layer_inputs+=("${guest_files[@]}")
fi
# the rendered agent settings by content (their file's name is a fresh temporary one)
settings_key=$(sha256sum < "$work/20-factory.conf" | cut -c1-16)
image_key=$(hash_text "$base_key $kernel_key $agent_key $wheels_key $variant $settings_key $(hash_files "${layer_inputs[@]}")")
image_dir=$cache/image-$image_key
name=minormode-$variant
if [ -f "$image_dir/manifest.json" ]; then
  note "cached: $image_dir"
else
  rm -rf "$image_dir.part"
  mkdir -p "$image_dir.part"
  MM_REPO=$repo MM_PY=$py MM_HERE=$here MM_VARIANT=$variant MM_FACTORY=$factory MM_POLICY=$policy \
  MM_BASE_TAR=$base_tar MM_KERNEL_DIR=$kernel_dir MM_KVER=$kver MM_WHEEL=$wheel \
  MM_WHEELS=$wheels_dir MM_WORK=$work MM_OUT=$image_dir.part MM_NAME=$name \
  MM_FACTORY_CONF=$work/20-factory.conf MM_DASHBOARD_CA=$dashboard_ca \
  MM_KEYS="base=$base_key kernel=$kernel_key agent=$agent_key wheels=$wheels_key image=$image_key" \
    "$here/lib/layer.sh"
  rm -rf "$image_dir"
  mv "$image_dir.part" "$image_dir"
  # keep the cache bounded: the newest three finished images
  ls -dt "$cache"/image-*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
steps=$((steps))

progress "copying the image to $out"
deb_name=$(cd "$image_dir" && ls minormode_*_arm64.deb)
for f in "$name.img" vmlinuz initrd.img bcm2837-rpi-3-b.dtb manifest.json "$deb_name"; do
  cp --sparse=always "$image_dir/$f" "$out/$f.part"
  mv "$out/$f.part" "$out/$f"
done
cp "$image_dir/manifest.json" "$out/$name.manifest.json"

progress "done"
note "image:    $out/$name.img ($(du -h --apparent-size "$out/$name.img" | cut -f1), sha256 $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"]["sha256"])' "$out/manifest.json"))"
note "manifest: $out/manifest.json"
note "package:  $out/$deb_name (the same agent for an existing Raspberry Pi OS: apt install ./$deb_name)"
note "flash:    dd if=$out/$name.img of=/dev/sdX bs=4M conv=fsync"
