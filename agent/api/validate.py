"""Argument checks for the agent's D-Bus methods: each returns the clean value or raises
`InvalidArgumentError` with a message naming the argument and the rule it broke."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from agent.api.controller import ReportKind
from agent.core.guardian_code import DIGITS, valid_format

REQUEST_MINUTES = (1, 240)
GRANT_MINUTES = (1, 720)
NOTE_MAX = 500
REPORT_NOTE_MAX = 2000
PATH_MAX = 4096
_ALLOWED_FORMAT = frozenset("\n\t\u200c\u200d")  # newline, tab, and the joiners emoji use


class InvalidArgumentError(ValueError):
    """A caller's argument broke a rule; nothing was changed."""


def minutes(name: str, value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name}: {value} is outside {low}..{high}")
    return value


def text(name: str, value: str, limit: int) -> str:
    """Free text from the child: bounded length, no control characters but newline and tab."""
    if len(value) > limit:
        raise InvalidArgumentError(f"{name}: {len(value)} characters, at most {limit}")
    for i, ch in enumerate(value):
        if ch in _ALLOWED_FORMAT:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise InvalidArgumentError(f"{name}: character {i} (U+{ord(ch):04X}) is not allowed")
    return value


def report_kind(value: str) -> ReportKind:
    try:
        return ReportKind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in ReportKind)
        raise InvalidArgumentError(f"kind: {value!r} is not one of {kinds}") from None


def guardian_code(value: str) -> str:
    if not valid_format(value):
        raise InvalidArgumentError(f"code: must be exactly {DIGITS} digits 0-9")
    return value


def policy_path(value: str) -> Path:
    if not value or len(value) > PATH_MAX:
        raise InvalidArgumentError(f"path: must be 1..{PATH_MAX} characters")
    path = Path(value)
    if not path.is_absolute():
        raise InvalidArgumentError(f"path: {value!r} is not absolute")
    if not path.is_file():
        raise InvalidArgumentError(f"path: {value!r} is not a readable regular file")
    return path
