"""Byte and JSON encodings of PROTOCOL.md §1: hex, unpadded base64url, domain strings, and a
strict JSON reader that names the field of every problem.

Why strict: a signature covers exact bytes, so two readers that disagree on what those bytes
mean (a duplicated key one takes first and another last, a float that is "really" an
integer) would let a signed message say two things. `loads` refuses everything RFC 8259
leaves ambiguous, and `Fields` makes each reader say which keys it expects, so an unknown
key is an error rather than something ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from protocol.errors import ProtocolError

MAX_INT = 2**53 - 1
_HEX = re.compile(r"[0-9a-f]*")
_B64 = re.compile(r"[A-Za-z0-9_-]*")


def dom(name: str) -> bytes:
    """The domain-separation prefix `minormode/v1/<name>` + one zero byte."""
    return b"minormode/v1/" + name.encode("ascii") + b"\x00"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str, where: str, size: int | None = None, max_size: int | None = None) -> bytes:
    if not isinstance(text, str) or _B64.fullmatch(text) is None or len(text) % 4 == 1:
        raise ProtocolError(where, "not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(where, "not unpadded base64url") from exc
    if b64(data) != text:  # non-canonical trailing bits
        raise ProtocolError(where, "not canonical base64url")
    if size is not None and len(data) != size:
        raise ProtocolError(where, f"{len(data)} bytes, expected {size}")
    if max_size is not None and len(data) > max_size:
        raise ProtocolError(where, f"{len(data)} bytes, at most {max_size} allowed")
    return data


def unhex(text: object, where: str, size: int) -> bytes:
    """Lowercase hex of exactly `size` bytes."""
    if not isinstance(text, str) or len(text) != 2 * size or _HEX.fullmatch(text) is None:
        raise ProtocolError(where, f"expected {2 * size} lowercase hex characters")
    return bytes.fromhex(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes, where: str, max_bytes: int) -> Any:
    """Parse UTF-8 JSON strictly: no duplicate keys, no NaN/Infinity, bounded size."""
    if not isinstance(data, bytes | bytearray):
        raise ProtocolError(where, "expected bytes")
    if len(data) > max_bytes:
        raise ProtocolError(where, f"{len(data)} bytes, at most {max_bytes} allowed")
    try:
        text = bytes(data).decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(where, f"not valid JSON ({exc})") from exc


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (what this package writes; readers never depend on its form)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class Fields:
    """A JSON object read key by key; `done()` refuses any key nobody asked for."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, Mapping):
            raise ProtocolError(where, f"expected an object, got {type(value).__name__}")
        self.value: Mapping[str, Any] = value
        self.where = where
        self._read: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.value

    def raw(self, key: str, *, optional: bool = False) -> Any:
        self._read.add(key)
        if key not in self.value:
            if optional:
                return None
            raise ProtocolError(self.at(key), "missing")
        return self.value[key]

    def text(self, key: str, *, max_len: int, min_len: int = 0, optional: bool = False) -> str:
        value = self.raw(key, optional=optional)
        if value is None and optional:
            return ""
        if not isinstance(value, str):
            raise ProtocolError(self.at(key), f"expected a string, got {type(value).__name__}")
        if not min_len <= len(value) <= max_len:
            raise ProtocolError(self.at(key), f"length {len(value)}, expected {min_len}..{max_len}")
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ProtocolError(self.at(key), "control characters are not allowed")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(key)
        if value not in allowed:
            raise ProtocolError(self.at(key), f"{value!r} is not one of {', '.join(allowed)}")
        return str(value)

    def integer(self, key: str, *, low: int = 0, high: int = MAX_INT, optional: bool = False) -> int | None:
        value = self.raw(key, optional=optional)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(self.at(key), f"expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise ProtocolError(self.at(key), f"{value} is outside {low}..{high}")
        return value

    def int_(self, key: str, *, low: int = 0, high: int = MAX_INT) -> int:
        value = self.integer(key, low=low, high=high)
        assert value is not None
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise ProtocolError(self.at(key), f"expected true or false, got {type(value).__name__}")
        return value

    def hexid(self, key: str, size: int = 16, *, optional: bool = False) -> str | None:
        value = self.raw(key, optional=optional)
        if value is None and optional:
            return None
        unhex(value, self.at(key), size)
        return str(value)

    def hex_(self, key: str, size: int = 16) -> str:
        value = self.hexid(key, size)
        assert value is not None
        return value

    def bytes_(self, key: str, *, size: int | None = None, max_size: int | None = None) -> bytes:
        return unb64(self.raw(key), self.at(key), size, max_size)

    def obj(self, key: str) -> Fields:
        return Fields(self.raw(key), self.at(key))

    def array(self, key: str, *, max_items: int) -> list[Any]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise ProtocolError(self.at(key), f"expected an array, got {type(value).__name__}")
        if len(value) > max_items:
            raise ProtocolError(self.at(key), f"{len(value)} items, at most {max_items} allowed")
        return value

    def done(self) -> None:
        extra = sorted(set(self.value) - self._read)
        if extra:
            raise ProtocolError(self.at(extra[0]), f"unknown key (allowed: {', '.join(sorted(self._read))})")
