"""The kernel command line and boot configuration: as the image shipped them (the boot
manifest's checksums), with nothing that opens a shell or a console (init=/bin/sh,
systemd.debug_shell, a serial console, SysRq forced on), and, on the running system, the
command line the kernel really booted with."""

from __future__ import annotations

from collections.abc import Sequence

from agent.lockdown.manifest import (
    BOOT_DIR,
    MANIFEST,
    BootManifest,
    ManifestError,
    parse_manifest,
    sha256_hex,
)
from agent.lockdown.model import Context, Finding, RootView

# parameters that give a shell, skip the agent or open a console: whole words, and keys
OPENING_WORDS = frozenset({
    "single", "s", "S", "1", "emergency", "rescue", "-s", "systemd.debug_shell", "systemd.debug-shell",
    "rd.break", "rd.shell", "rd.emergency", "rd.rescue", "sysrq_always_enabled", "kgdbwait",
})
OPENING_KEYS = ("init", "rdinit", "systemd.unit", "rd.systemd.unit", "systemd.mask", "systemd.wants",
                "systemd.run", "systemd.debug_shell", "rd.break", "break", "kgdboc", "kgdbdbgp",
                "sysrq_always_enabled")
SERIAL_CONSOLES = ("ttyS", "ttyAMA", "serial", "ttyGS", "ttyUSB", "hvc")
PROC_CMDLINE = "/proc/cmdline"


def opening_words(cmdline: str) -> list[str]:
    """The words of a kernel command line that open the device."""
    out = []
    for word in cmdline.split():
        key, eq, value = word.partition("=")
        if (not eq and word in OPENING_WORDS) or (eq and key in OPENING_KEYS) or (
                key == "console" and value.startswith(SERIAL_CONSOLES)):
            out.append(word)
    return out


def _opening_findings(prefix: str, cmdline: str, path: str) -> list[Finding]:
    return [Finding(f"{prefix}:{word}", f"the kernel command line has {word}: a shell, a console, or the "
                    "agent skipped", path, f"remove {word} (the image ships image-build/boot/cmdline.txt)")
            for word in opening_words(cmdline)]


def _manifest(view: RootView) -> BootManifest | Finding:
    text = view.read_text(MANIFEST)
    fix = "rebuild the image (image-build writes it) or reflash"
    if text is None:
        return Finding("boot.manifest", "the boot manifest is missing: the boot files cannot be checked",
                       MANIFEST, fix)
    try:
        return parse_manifest(text)
    except ManifestError as exc:
        return Finding("boot.manifest", f"the boot manifest is unusable: {exc}", MANIFEST, fix)


def boot_files(view: RootView, _ctx: Context) -> Sequence[Finding]:
    manifest = _manifest(view)
    if isinstance(manifest, Finding):
        return [manifest]
    out = []
    for name, digest in sorted(manifest.files.items()):
        path = f"{manifest.boot_dir}/{name}"
        data = view.read_bytes(path)
        if data is None:
            out.append(Finding(f"boot.file:{name}", f"{name} is missing from the boot partition "
                               "(not mounted, or removed)", path,
                               f"mount the boot partition on {manifest.boot_dir}, or reflash it"))
        elif sha256_hex(data) != digest:
            out.append(Finding(f"boot.file:{name}", f"{name} differs from what the image shipped (sha256 "
                               f"{sha256_hex(data)[:12]}…, recorded {digest[:12]}…): edited on the card?",
                               path, "restore the image's file (reflash the boot partition); "
                               "report the unit"))
    return out


def boot_cmdline(view: RootView, _ctx: Context) -> Sequence[Finding]:
    manifest = _manifest(view)
    boot_dir = BOOT_DIR if isinstance(manifest, Finding) else manifest.boot_dir
    path = f"{boot_dir}/cmdline.txt"
    return _opening_findings("boot.cmdline", view.read_text(path) or "", path)


def running_cmdline(view: RootView, ctx: Context) -> Sequence[Finding]:
    if ctx.runtime is None or ctx.runtime.cmdline is None:
        return []
    out = _opening_findings("boot.running-cmdline", ctx.runtime.cmdline, PROC_CMDLINE)
    manifest = _manifest(view)
    if not isinstance(manifest, Finding):
        booted = set(ctx.runtime.cmdline.split())  # the firmware adds words of its own
        for word in (w for w in manifest.cmdline.split() if w not in booted):
            out.append(Finding(f"boot.running-cmdline:missing:{word}", f"the kernel booted without {word}, "
                               "which the image's command line has", PROC_CMDLINE,
                               "restore cmdline.txt and reboot; report the unit"))
    return out
