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
from agent.trust.store import TrustStore


def cmd_guardian_code(args: argparse.Namespace) -> int:
    """The code valid now: from a secret file (hex, the form the daemon's --guardian-secret
    reads) or from the secret a guardian provisioned (the state directory's trust store)."""
    if args.secret_file is not None:
        try:
            secret = guardian_code.parse_secret(Path(args.secret_file).read_text(encoding="ascii"))
        except OSError as exc:
            raise BadInputError(f"guardian-code --secret-file {args.secret_file}: {exc.strerror}") from exc
        except ValueError as exc:
            raise BadInputError(f"guardian-code --secret-file {args.secret_file}: {exc}") from exc
    else:
        path = Path(args.state) / "trust.sqlite"
        if not path.exists():
            raise BadInputError(f"guardian-code: {path}: no trust store (is the device paired?)")
        store = TrustStore(path)
        try:
            provisioned = store.code_secret()
        finally:
            store.close()
        if provisioned is None:
            raise BadInputError(f"guardian-code: {path}: no guardian has set a code secret")
        secret = provisioned[0]
    print(guardian_code.code_at(secret, datetime.now(UTC)))
    return 0


def cmd_guardian_key_new(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise BadInputError(f"--out {out}: exists; not overwriting a key")
    if not out.parent.is_dir():
        raise BadInputError(f"--out {out}: no directory {out.parent}")
    key = X25519PrivateKey.generate()
    seal.write_private_key(out, key)
    print(seal.recipient_id(key.public_key()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("guardian-code", help="print the guardian code valid now")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--secret-file", help="a secret file (hex), as the daemon's --guardian-secret")
    where.add_argument("--state", help="the agent's state directory: the secret a guardian set")
    p.set_defaults(func=guarded(cmd_guardian_code))
    gk = sub.add_parser("guardian-key", help="guardian key pairs (tests, support)")
    gsub = gk.add_subparsers(dest="guardian_key_command", required=True)
    p = gsub.add_parser("new", help="write a new private key file; print the public key")
    p.add_argument("--out", required=True)
    p.set_defaults(func=guarded(cmd_guardian_key_new, failed=(seal.SealError,)))
