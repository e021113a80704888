"""Domain names as guardians and list makers write them -> the form the filter compares."""

from __future__ import annotations

import functools
import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_DOMAIN = re.compile(r"(?:(?!-)[a-z0-9_-]{1,63}(?<!-)\.)+(?!-)[a-z0-9_-]{1,63}(?<!-)")


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
    if _DOMAIN.fullmatch(name) is None:
        # Slow path only for bad input: say which label is wrong.
        labels = name.split(".")
        if len(labels) < 2:
            raise ValueError("a single label is not a domain")
        for label in labels:
            if not _LABEL.match(label):
                raise ValueError(f"invalid label {label!r}")
    if name[name.rfind(".") + 1 :].isdigit():  # no TLD is numeric: an IPv4 address
        raise ValueError("an IP address is not a domain")
    return name


@functools.lru_cache(maxsize=256)  # hosts files repeat one address on every line
def looks_like_ip(token: str) -> bool:
    """True for an IPv4 or IPv6 address (cheap test first: most tokens are domains)."""
    if ":" not in token and not token.replace(".", "").isdigit():
        return False
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def wire_name(domain: str) -> bytes:
    """Wire form of an already normalised domain (fast: no validation)."""
    return ("".join(chr(len(label)) + label for label in domain.split(".")) + "\0").encode(
        "ascii"
    )
