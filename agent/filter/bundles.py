"""List bundles on disk: make one (the manufacturer), verify one, install one (the device).

The format and its rules are in `agent.filter.bundle`. Installing copies each listed file
into a staging directory while hashing the bytes it copies (so a file swapped after the
check is never what gets compiled), refuses any mismatch, an unlisted file, a symlink or
a version not newer than the installed one, then compiles the staged sources with
`compile_all` (every category file replaced at once, or none) and records the manifest
and its signature beside the compiled lists. Nothing in the output changes on a refusal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.filter.bundle import (
    MANIFEST,
    SIGNATURE,
    BundleError,
    BundleFile,
    Manifest,
    key_id,
    parse_manifest,
    parse_public_key,
    sign_manifest,
    verify_manifest,
)
from agent.filter.hashlist import AtomicFile
from agent.filter.lists import CATEGORIES, CompileReport, Progress, compile_all, source_files
from protocol.encoding import b64

DEFAULT_KEYS = Path("/etc/minormode/list-keys")
_CHUNK = 1 << 20


def generate_key(prefix: Path) -> str:
    """PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (for the device's list-keys
    directory); returns the key id. Refuses to overwrite either file."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    private = prefix.with_name(prefix.name + ".key")
    public = prefix.with_name(prefix.name + ".pub")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    with public.open("x") as f:
        f.write(b64(raw) + "\n")
    return key_id(raw)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise BundleError(str(path), f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(str(path), "not an Ed25519 key")
    return key


def load_trusted(directory: Path) -> dict[str, bytes]:
    """Key id -> raw public key, from every `*.pub` in `directory` (none if it is absent)."""
    if not directory.is_dir():
        return {}
    trusted = {}
    for path in sorted(directory.glob("*.pub")):
        raw = parse_public_key(path.read_text(errors="replace"), str(path))
        trusted[key_id(raw)] = raw
    return trusted


def _sources(src: Path) -> Iterator[tuple[str, Path]]:
    """(path in the bundle, file) for every category source in `src`, as `lists compile`
    finds them; any other entry is an error (a typo would leave a category out)."""
    for entry in sorted(src.iterdir()):
        if entry.name.startswith(".") or entry.name.lower().endswith(".md"):
            continue
        stem = entry.name[:-4] if entry.is_file() and entry.name.endswith(".txt") else entry.name
        if stem not in CATEGORIES:
            raise BundleError(str(entry), f"not a category source ({', '.join(CATEGORIES)})")
    for category in CATEGORIES:
        for path in source_files(src, category):
            yield str(path.relative_to(src)), path


def _copy_hashing(source: Path, dest: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as fin, dest.open("xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    return digest.hexdigest(), size


def make_bundle(src: Path, key: Ed25519PrivateKey, version: int, out: Path,
                created: datetime | None = None) -> Manifest:
    """Copy `src`'s category sources into the new directory `out`, with a signed manifest."""
    if not src.is_dir():
        raise BundleError(str(src), "no such directory")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    out.mkdir()
    files = []
    for rel, path in _sources(src):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        digest, size = _copy_hashing(path, out / rel)
        files.append(BundleFile(rel, digest, size))
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = Manifest(key_id(raw), version, when, tuple(files))
    data, signature = sign_manifest(manifest, key)
    parse_manifest(data)  # what we sign must be what a device accepts (no files: an error)
    (out / MANIFEST).write_bytes(data)
    (out / SIGNATURE).write_text(signature)
    return manifest


def _read_signed(bundle: Path, trusted: dict[str, bytes]) -> tuple[Manifest, bytes, str]:
    if not bundle.is_dir():
        raise BundleError(str(bundle), "no such bundle directory")
    if not trusted:
        raise BundleError("list keys", "no trusted list key is installed: no bundle can be verified")
    try:
        data = (bundle / MANIFEST).read_bytes()
        signature = (bundle / SIGNATURE).read_text(errors="replace")
    except OSError as exc:
        raise BundleError(str(bundle), f"cannot read {exc.filename}: {exc.strerror}") from None
    return verify_manifest(data, signature, trusted), data, signature


def _unlisted(bundle: Path, manifest: Manifest) -> list[str]:
    listed = {f.path for f in manifest.files} | {MANIFEST, SIGNATURE}
    found = []
    for root, dirs, names in os.walk(bundle):
        for name in (*names, *[d for d in dirs if os.path.islink(os.path.join(root, d))]):
            rel = os.path.relpath(os.path.join(root, name), bundle)
            if rel not in listed and not name.lower().endswith(".md"):
                found.append(rel)
    return sorted(found)


def _stage(bundle: Path, manifest: Manifest, staging: Path) -> None:
    """Copy every listed file into `staging`, checking the bytes copied."""
    if extra := _unlisted(bundle, manifest):
        raise BundleError(str(bundle / extra[0]), "not listed in the signed manifest")
    for f in manifest.files:
        source = bundle / f.path
        try:
            mode = source.lstat().st_mode
        except OSError:
            raise BundleError(str(source), "listed in the manifest but missing") from None
        if not stat.S_ISREG(mode):
            raise BundleError(str(source), "not a regular file (a symlink or a device)")
        (staging / f.path).parent.mkdir(parents=True, exist_ok=True)
        digest, size = _copy_hashing(source, staging / f.path)
        if size != f.size or digest != f.sha256:
            raise BundleError(str(source), f"{size} bytes with SHA-256 {digest[:16]}..., the "
                              f"signed manifest says {f.size} bytes and {f.sha256[:16]}...")


def verify_bundle(bundle: Path, trusted: dict[str, bytes]) -> Manifest:
    """Everything `install_bundle` checks, without installing."""
    manifest, _, _ = _read_signed(bundle, trusted)
    with tempfile.TemporaryDirectory(prefix=".mm-bundle-check-") as staging:
        _stage(bundle, manifest, Path(staging))
    return manifest


def installed(out: Path) -> Manifest | None:
    """The manifest of the bundle the lists in `out` were compiled from, if any."""
    try:
        data = (out / MANIFEST).read_bytes()
    except FileNotFoundError:
        return None
    return parse_manifest(data, str(out / MANIFEST))


def install_bundle(bundle: Path, trusted: dict[str, bytes], out: Path,
                   progress: Progress | None = None) -> tuple[Manifest, list[CompileReport]]:
    manifest, data, signature = _read_signed(bundle, trusted)
    current = installed(out)
    if current is not None and manifest.version <= current.version:
        raise BundleError(f"{bundle / MANIFEST}: version",
                          f"{manifest.version} is not newer than the installed {current.version} "
                          f"(from {current.created}): an older bundle would unblock names")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mm-bundle-", dir=out.parent))
    try:
        _stage(bundle, manifest, staging)
        reports = compile_all(staging, out, progress)
        for name, content in ((MANIFEST, data), (SIGNATURE, signature.encode())):
            with AtomicFile(out / name) as record:  # the record, after the lists it describes
                record.fh.write(content)
                record.commit()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest, reports

