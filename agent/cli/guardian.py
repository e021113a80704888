"""`minormodectl guardian-code | guardian-key new`: the guardian's side of the device's
secrets, for tests and support (the guardian's app does the same on the phone)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cli.errors import BadInputError, guarded
from agent.core import guardian_code
from agent.store import seal


def cmd_guardian_code(args: argparse.Namespace) -> int:
    """The code valid now, from the pairing secret (hex in a file)."""
    try:
        secret = bytes.fromhex(Path(args.secret_file).read_text().strip())
        print(guardian_code.code_at(secret, datetime.now(UTC)))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"guardian-code: {args.secret_file}: {exc}") from exc
    return 0


def cmd_guardian_key_new(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise BadInputError(f"--out {out}: exists; not overwriting a key")
    key = X25519PrivateKey.generate()
    seal.write_private_key(out, key)
    print(seal.recipient_id(key.public_key()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("guardian-code", help="print the guardian code valid now")
    p.add_argument("--secret-file", required=True, help="the pairing secret, hex")
    p.set_defaults(func=guarded(cmd_guardian_code))
    gk = sub.add_parser("guardian-key", help="guardian key pairs (tests, support)")
    gsub = gk.add_subparsers(dest="guardian_key_command", required=True)
    p = gsub.add_parser("new", help="write a new private key file; print the public key")
    p.add_argument("--out", required=True)
    p.set_defaults(func=guarded(cmd_guardian_key_new, failed=(seal.SealError,)))
