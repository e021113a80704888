"""First boot of a new device: its identity key, the factory settings, pairing mode.

Run once by minormode-firstboot.service (ConditionFirstBoot=yes) before the agent starts,
and safe to run again: an existing key is kept, a pairing in progress keeps its code, and a
device that is already paired is left paired. Bad factory settings change nothing.

    minormodectl firstboot [--factory FILE] [--state DIR]
    python -m agent.firstboot [--factory FILE] [--state DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent.factory import FactoryError, FactorySettings, load_factory_settings
from agent.store.identity import ensure_device_key, public_key_bytes, write_private
from agent.store.layout import StoreLayout

DEFAULT_FACTORY = Path("/etc/minormode/factory.toml")
DEFAULT_STATE = Path("/var/lib/minormode")
PAIRING = "pairing.json"  # under the state directory: the pairing mode and its code
EXIT_BAD_INPUT = 2


def fingerprint(public_key: bytes) -> str:
    """A short, readable fingerprint of the device key (first 16 bytes of its SHA-256)."""
    digest = hashlib.sha256(public_key).hexdigest()[:32]
    return ":".join(digest[i:i + 4] for i in range(0, 32, 4))


def provision(factory: Path, state: Path, now: datetime) -> dict[str, object]:
    """Make the key if needed and enter pairing mode; returns the pairing record."""
    settings: FactorySettings = load_factory_settings(factory)  # before anything is written
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The same identity key the journal signs its checkpoints with (one device, one key).
    key = ensure_device_key(StoreLayout(state).device_key)
    public = public_key_bytes(key)
    pairing_path = state / PAIRING
    if pairing_path.exists():
        try:
            existing = json.loads(pairing_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            existing = None  # a torn or garbled file: pairing starts over with a new code
        if (isinstance(existing, dict) and existing.get("state") in ("pairing", "paired")
                and existing.get("device_public_key") == base64.b64encode(public).decode()):
            return existing
    record: dict[str, object] = {
        "state": "pairing",
        "device_public_key": base64.b64encode(public).decode(),
        "device_fingerprint": fingerprint(public),
        "pairing_code": f"{secrets.randbelow(10**8):08d}",
        "entered_at": now.astimezone(UTC).isoformat(),
        "factory": settings.as_dict(),
    }
    write_private(pairing_path, json.dumps(record, indent=2).encode() + b"\n")
    return record


def run(args: argparse.Namespace) -> int:
    try:
        record = provision(Path(args.factory), Path(args.state), datetime.now(UTC))
    except FactoryError as exc:
        print(f"minormode firstboot: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    factory = record["factory"]
    if not isinstance(factory, dict):
        print(f"minormode firstboot: {args.state}/{PAIRING}: no factory record", file=sys.stderr)
        return 1
    print(f"minormode firstboot: {factory['manufacturer']} {factory['model']}, "
          f"device key {record['device_fingerprint']}")
    if record["state"] == "paired":
        print("minormode firstboot: already paired with a guardian")
    else:
        code = str(record["pairing_code"])
        if factory.get("dashboard_url"):
            print(f"minormode firstboot: pairing mode: open {factory['dashboard_url']} "
                  f"and enter code {code[:4]}-{code[4:]}")
        else:
            print(f"minormode firstboot: offline only (no dashboard_url in the factory settings); "
                  f"pairing code {code[:4]}-{code[4:]}")
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--factory", default=str(DEFAULT_FACTORY), help="factory settings file")
    parser.add_argument("--state", default=str(DEFAULT_STATE), help="the agent's state directory")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`minormodectl firstboot`."""
    p = subparsers.add_parser("firstboot", help="first boot: device key, factory settings, pairing mode")
    _add_arguments(p)
    p.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minormode-firstboot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
