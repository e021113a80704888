"""Category list bundles signed by the manufacturer's key: list updates that can ship later.

Why: the category lists (adult, gambling, ...) are licensed data a manufacturer adds and
updates after the tablet shipped. Whatever carries an update (a package, a download, a
USB stick in a repair shop) must not be what decides which names are blocked: only a
bundle signed by a key the image trusts is installed, and never one older than what is
installed (an old, smaller list replayed would unblock names).

A bundle is a directory:

    bundle.json   the manifest (below), the bytes the signature covers, as they are
    bundle.sig    base64url (unpadded) Ed25519 signature over dom("list-bundle") + bundle.json
    adult.txt     source lists, as `lists compile` reads them: CATEGORY.txt or
    adult/ut1.txt CATEGORY/FILE (only the categories, never the guardian's own lists)

    {"format": 1, "publisher": KEY_ID, "version": N, "created": "2026-12-02T10:00:00Z",
     "files": [{"path": "adult.txt", "sha256": HEX, "size": BYTES}, ...]}

`publisher` is the signing key's id (`key_id`: 16 bytes of SHA-256 over dom("list-key")
and the raw public key, hex), so the verifier picks the key without trying them all.
Trusted keys are files `NAME.pub` holding the raw 32-byte Ed25519 public key in base64url
(`/etc/minormode/list-keys/` on the device). The manifest is parsed strictly (unknown
keys, duplicate keys, bad paths, `..`, absolute paths, files outside the categories are
errors naming the field) and only after its signature verified.

Pure part: `parse_manifest`, `verify_manifest`, `manifest_json`, `key_id`, `parse_public_key`.
File-system part (`agent.filter.bundles`): signing, verifying files, installing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.filter.lists import CATEGORIES
from protocol.encoding import Fields, b64, dom, dumps, loads, unb64
from protocol.errors import ProtocolError

FORMAT = 1
MANIFEST = "bundle.json"
SIGNATURE = "bundle.sig"
MAX_MANIFEST = 1 << 20
MAX_FILES = 4096
MAX_FILE_BYTES = 4 << 30  # a list of tens of millions of names still fits
MAX_VERSION = (1 << 53) - 1  # what JSON carries exactly everywhere
_PATH = re.compile(r"(?P<category>[a-z][a-z0-9-]{0,31})(?:\.txt|/[A-Za-z0-9][A-Za-z0-9._-]{0,127})")
_CREATED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle that must not be installed: `where` names the file or field, and why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the bundle directory: CATEGORY.txt or CATEGORY/FILE
    sha256: str
    size: int

    @property
    def category(self) -> str:
        match = _PATH.fullmatch(self.path)
        assert match is not None
        return match["category"]


@dataclass(frozen=True)
class Manifest:
    publisher: str
    version: int
    created: str
    files: tuple[BundleFile, ...]

    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({f.category for f in self.files}))


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(dom("list-key") + public_raw).digest()[:16].hex()


def parse_public_key(text: str, where: str) -> bytes:
    """A trusted key file's content: the raw 32-byte Ed25519 key in base64url, one line."""
    try:
        raw = unb64(text.strip(), where, size=32)
        Ed25519PublicKey.from_public_bytes(raw)
    except (ProtocolError, ValueError) as exc:
        raise BundleError(where, "not an Ed25519 public key (32 bytes in base64url)") from exc
    return raw


def manifest_json(manifest: Manifest) -> bytes:
    return dumps({
        "format": FORMAT, "publisher": manifest.publisher, "version": manifest.version,
        "created": manifest.created,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in manifest.files],
    })


def sign_manifest(manifest: Manifest, key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """The manifest's bytes and their signature file's text."""
    data = manifest_json(manifest)
    return data, b64(key.sign(dom("list-bundle") + data)) + "\n"


def parse_manifest(data: bytes, where: str = MANIFEST) -> Manifest:
    try:
        f = Fields(loads(data, "", MAX_MANIFEST), "")
        if f.int_("format", high=MAX_VERSION) != FORMAT:
            raise BundleError(f"{where}: format", f"{f.value['format']} is not {FORMAT}")
        publisher = f.hex_("publisher")
        version = f.int_("version", low=1, high=MAX_VERSION)
        created = f.text("created", max_len=20)
        if not _CREATED.fullmatch(created):
            raise BundleError(f"{where}: created", f"{created!r} is not YYYY-MM-DDTHH:MM:SSZ")
        files = []
        seen: set[str] = set()
        for i, item in enumerate(f.array("files", max_items=MAX_FILES)):
            at = f"files[{i}]"
            g = Fields(item, at)
            path = g.text("path", max_len=200)
            match = _PATH.fullmatch(path)
            if match is None:
                raise BundleError(f"{where}: {at}.path", f"{path!r} is not CATEGORY.txt or CATEGORY/FILE")
            if match["category"] not in CATEGORIES:
                raise BundleError(f"{where}: {at}.path",
                                  f"{match['category']!r} is not a category ({', '.join(CATEGORIES)})")
            if path in seen:
                raise BundleError(f"{where}: {at}.path", f"{path!r} is listed twice")
            seen.add(path)
            digest = g.text("sha256", max_len=64)
            if not _HEX64.fullmatch(digest):
                raise BundleError(f"{where}: {at}.sha256", "not 64 lowercase hex digits")
            files.append(BundleFile(path, digest, g.int_("size", high=MAX_FILE_BYTES)))
            g.done()
        f.done()
    except ProtocolError as exc:
        raise BundleError(f"{where}: {exc.where}" if exc.where else where, exc.problem) from None
    if not files:
        raise BundleError(f"{where}: files", "no list in the bundle")
    return Manifest(publisher, version, created, tuple(files))


def verify_manifest(data: bytes, signature_text: str, trusted: Mapping[str, bytes]) -> Manifest:
    """The manifest, if `signature_text` is a signature over `data` by one of `trusted`
    (key id -> raw public key). The signature is checked before the manifest is parsed
    beyond finding its publisher."""
    try:
        sig = unb64(signature_text.strip(), SIGNATURE, size=64)
    except ProtocolError as exc:
        raise BundleError(SIGNATURE, exc.problem) from None
    try:
        publisher = Fields(loads(data, "", MAX_MANIFEST), "").raw("publisher")
    except ProtocolError as exc:
        raise BundleError(f"{MANIFEST}: {exc.where}" if exc.where else MANIFEST, exc.problem) from None
    if not isinstance(publisher, str) or publisher not in trusted:
        known = ", ".join(sorted(trusted)) or "none"
        raise BundleError(f"{MANIFEST}: publisher",
                          f"{publisher!r} is not a trusted list key (trusted: {known})")
    try:
        Ed25519PublicKey.from_public_bytes(trusted[publisher]).verify(sig, dom("list-bundle") + data)
    except InvalidSignature:
        raise BundleError(SIGNATURE, f"does not verify for list key {publisher}") from None
    return parse_manifest(data)
