"""Signed list bundles (agent.filter.bundle, agent.filter.bundles, `minormodectl lists
keygen|sign|verify|install`): only a bundle signed by a trusted list key, with every file
as the signed manifest says and a version newer than the installed one, is compiled;
anything else is refused naming the file or field, and nothing in the output changes."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent.cli.main import main
from agent.filter.bundle import (
    BundleError,
    BundleFile,
    Manifest,
    key_id,
    manifest_json,
    parse_manifest,
    sign_manifest,
    verify_manifest,
)
from agent.filter.bundles import generate_key, install_bundle, load_private_key, load_trusted, make_bundle
from agent.filter.dnswire import encode_name
from agent.filter.hashlist import HashList, name_hash
from protocol.encoding import b64, dom

DIGEST = "ab" * 32


def _manifest(**change: object) -> dict[str, object]:
    value: dict[str, object] = {"format": 1, "publisher": "00" * 16, "version": 3,
                                "created": "2026-12-02T10:00:00Z",
                                "files": [{"path": "adult.txt", "sha256": DIGEST, "size": 10}]}
    value.update(change)
    return value


def _bytes(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("change, where", [
    ({"format": 2}, "format"),
    ({"version": 0}, "version"),
    ({"version": "3"}, "version"),
    ({"created": "yesterday"}, "created"),
    ({"files": []}, "files"),
    ({"files": [{"path": "../etc/passwd", "sha256": DIGEST, "size": 1}]}, "files[0].path"),
    ({"files": [{"path": "/adult.txt", "sha256": DIGEST, "size": 1}]}, "files[0].path"),
    ({"files": [{"path": "adult/../../x", "sha256": DIGEST, "size": 1}]}, "files[0].path"),
    ({"files": [{"path": "guardian-block.txt", "sha256": DIGEST, "size": 1}]}, "files[0].path"),
    ({"files": [{"path": "casino.txt", "sha256": DIGEST, "size": 1}]}, "files[0].path"),
    ({"files": [{"path": "adult.txt", "sha256": "AB" * 32, "size": 1}]}, "files[0].sha256"),
    ({"files": [{"path": "adult.txt", "sha256": DIGEST, "size": -1}]}, "files[0].size"),
    ({"files": [{"path": "adult.txt", "sha256": DIGEST, "size": 1, "mode": 755}]}, "files[0].mode"),
    ({"files": [{"path": "adult.txt", "sha256": DIGEST, "size": 1}] * 2}, "files[1].path"),
    ({"publisher": "not-hex"}, "publisher"),
    ({"extra": True}, "extra"),
])
def test_a_bad_manifest_is_refused_naming_the_field(change: dict[str, object], where: str) -> None:
    with pytest.raises(BundleError) as err:
        parse_manifest(_bytes(_manifest(**change)))
    assert err.value.where == f"bundle.json: {where}", err.value


def test_duplicate_keys_and_non_json_are_refused() -> None:
    with pytest.raises(BundleError, match=r"bundle\.json"):
        parse_manifest(b'{"format": 1, "format": 1}')
    with pytest.raises(BundleError, match=r"bundle\.json"):
        parse_manifest(b"\xff not json")


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_are_refused_with_bundleerror(data: bytes) -> None:
    with contextlib.suppress(BundleError):  # anything else escaping fails the test
        parse_manifest(data)


def test_the_signature_covers_the_manifests_bytes_under_its_own_domain() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    kid = key_id(raw)
    manifest = Manifest(kid, 7, "2026-12-02T10:00:00Z", (BundleFile("adult.txt", DIGEST, 10),))
    data, sig = sign_manifest(manifest, key)
    assert verify_manifest(data, sig, {kid: raw}) == manifest
    # the same bytes signed for another purpose (a guardian message's domain) do not verify
    other = b64(key.sign(dom("guardian-message") + data))
    with pytest.raises(BundleError, match="does not verify"):
        verify_manifest(data, other, {kid: raw})
    # one byte changed after signing
    with pytest.raises(BundleError, match="does not verify"):
        verify_manifest(data.replace(b'"version":7', b'"version":8'), sig, {kid: raw})
    # a key the device does not trust, even a valid signature by it
    with pytest.raises(BundleError, match="not a trusted list key"):
        verify_manifest(data, sig, {})
    assert manifest_json(parse_manifest(data)) == data


# -- the CLI, end to end, as a manufacturer and a device use it


@pytest.fixture
def maker(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "device-keys"
    keys.mkdir()
    assert main(["lists", "keygen", "--out", str(tmp_path / "acme")]) == 0
    (tmp_path / "acme.pub").rename(keys / "acme.pub")
    src = tmp_path / "src"
    (src / "gambling").mkdir(parents=True)
    (src / "adult.txt").write_text("porn.example\n# a comment\nxxx.example\n")
    (src / "gambling" / "ut1.txt").write_text("casino.example\n")
    (src / "SOURCES.md").write_text("UT1, 2026-12-01, CC BY-SA\n")
    return {"key": tmp_path / "acme.key", "keys": keys, "src": src, "out": tmp_path / "lists",
            "root": tmp_path}


def _sign(m: dict[str, Path], version: int, name: str) -> Path:
    bundle = m["root"] / name
    assert main(["lists", "sign", "--key", str(m["key"]), "--src", str(m["src"]), "--version",
                 str(version), "--out", str(bundle)]) == 0
    return bundle


def _install(m: dict[str, Path], bundle: Path) -> int:
    return main(["lists", "install", str(bundle), "--keys", str(m["keys"]), "--out", str(m["out"]), "--quiet"])


def _has(out: Path, category: str, name: str) -> bool:
    hl = HashList(out / f"{category}.mmdl")
    try:
        return name_hash(encode_name(name)) in hl
    finally:
        hl.close()


def _snapshot(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_signed_bundle_installs_and_its_names_are_blocked(maker: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _sign(maker, 1, "b1")
    assert main(["lists", "verify", str(bundle), "--keys", str(maker["keys"])]) == 0
    assert _install(maker, bundle) == 0
    assert _has(maker["out"], "adult", "xxx.example") and _has(maker["out"], "gambling", "casino.example")
    assert not _has(maker["out"], "adult", "casino.example")
    capsys.readouterr()
    assert main(["lists", "info", "--out", str(maker["out"])]) == 0
    assert "bundle: version 1 of 20" in capsys.readouterr().out
    assert main(["lists", "info", "--out", str(maker["out"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bundle"]["version"] == 1 and {"adult", "gambling"} <= set(info["bundle"]["categories"])
    assert [info["bundle"]["publisher"]] == list(load_trusted(maker["keys"]))  # the signing key's id
    # a newer bundle replaces the lists
    (maker["src"] / "adult.txt").write_text("other.example\n")
    assert _install(maker, _sign(maker, 2, "b2")) == 0
    assert _has(maker["out"], "adult", "other.example") and not _has(maker["out"], "adult", "xxx.example")


def _tamper_content(b: Path) -> None:
    (b / "adult.txt").write_text("nothing.example\n")


def _tamper_extra(b: Path) -> None:
    (b / "social.txt").write_text("unlisted.example\n")


def _tamper_symlink(b: Path) -> None:
    (b / "adult.txt").unlink()
    (b / "adult.txt").symlink_to("/etc/hostname")


def _tamper_missing(b: Path) -> None:
    (b / "gambling" / "ut1.txt").unlink()


def _tamper_manifest(b: Path) -> None:
    data = json.loads((b / "bundle.json").read_bytes())
    data["version"] = 99
    (b / "bundle.json").write_bytes(json.dumps(data).encode())


def _tamper_signature(b: Path) -> None:
    (b / "bundle.sig").write_text("AAAA\n")


@pytest.mark.parametrize("tamper, says", [
    (_tamper_content, "the signed manifest says"),
    (_tamper_extra, "not listed in the signed manifest"),
    (_tamper_symlink, "not a regular file"),
    (_tamper_missing, "missing"),
    (_tamper_manifest, "does not verify"),
    (_tamper_signature, "bundle.sig"),
])
def test_a_tampered_bundle_is_refused_and_the_installed_lists_stay(
        maker: dict[str, Path], capsys: pytest.CaptureFixture[str], tamper: object, says: str) -> None:
    assert _install(maker, _sign(maker, 1, "good")) == 0
    before = _snapshot(maker["out"])
    bad = _sign(maker, 2, "bad")
    tamper(bad)  # type: ignore[operator]
    capsys.readouterr()
    assert main(["lists", "verify", str(bad), "--keys", str(maker["keys"])]) == 1
    assert _install(maker, bad) == 1
    err = capsys.readouterr().err
    assert says in err and "nothing changed" in err, err
    assert _snapshot(maker["out"]) == before


def test_an_older_or_equal_version_is_refused(maker: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    old = _sign(maker, 4, "v4")
    assert _install(maker, _sign(maker, 5, "v5")) == 0
    before = _snapshot(maker["out"])
    capsys.readouterr()
    assert _install(maker, old) == 1
    assert "4 is not newer than the installed 5" in capsys.readouterr().err
    assert _install(maker, _sign(maker, 5, "v5-again")) == 1
    assert _snapshot(maker["out"]) == before


def test_a_bundle_by_an_untrusted_key_or_with_no_keys_is_refused(maker: dict[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    generate_key(tmp_path / "mallory")
    bundle = tmp_path / "mallory-bundle"
    make_bundle(maker["src"], load_private_key(tmp_path / "mallory.key"), 9, bundle)
    assert _install(maker, bundle) == 1
    assert "not a trusted list key" in capsys.readouterr().err
    empty = tmp_path / "no-keys"
    empty.mkdir()
    with pytest.raises(BundleError, match="no trusted list key"):
        install_bundle(bundle, load_trusted(empty), maker["out"])
    assert not maker["out"].exists()


def test_a_bad_trusted_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.pub").write_text("not a key\n")
    with pytest.raises(BundleError, match=r"broken\.pub"):
        load_trusted(tmp_path)


def test_keygen_never_overwrites_and_the_private_key_is_private(tmp_path: Path) -> None:
    assert main(["lists", "keygen", "--out", str(tmp_path / "k")]) == 0
    assert os.stat(tmp_path / "k.key").st_mode & 0o077 == 0
    before = (tmp_path / "k.key").read_bytes()
    assert main(["lists", "keygen", "--out", str(tmp_path / "k")]) == 2
    assert (tmp_path / "k.key").read_bytes() == before


def test_sign_refuses_an_unknown_source_and_an_existing_output(maker: dict[str, Path]) -> None:
    (maker["src"] / "casino.txt").write_text("x.example\n")
    assert main(["lists", "sign", "--key", str(maker["key"]), "--src", str(maker["src"]), "--version", "1",
                 "--out", str(maker["root"] / "b")]) == 1
    (maker["src"] / "casino.txt").unlink()
    (maker["root"] / "exists").mkdir()
    assert main(["lists", "sign", "--key", str(maker["key"]), "--src", str(maker["src"]), "--version", "1",
                 "--out", str(maker["root"] / "exists")]) == 2
