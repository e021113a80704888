"""Domain names as guardians and list makers write them -> the form the filter compares."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def normalize_domain(raw: str) -> str:
    """Lowercase, strip a trailing dot and a leading '*.', IDNA-encode; ValueError if invalid."""
    name = raw.strip().lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    if not name:
        raise ValueError("empty domain")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a valid internationalised domain: {exc}") from None
    if len(name) > 253:
        raise ValueError("longer than 253 characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError("a single label is not a domain")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(f"invalid label {label!r}")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    raise ValueError("an IP address is not a domain")
