"""Reading a settings file in TOML: one error naming the file and what went wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(ValueError):
    """The file is missing, unreadable, not UTF-8 or not TOML."""


def load_toml(path: Path, what: str) -> dict[str, Any]:
    """The file's table; `what` names the file's kind in the error ("factory settings")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TomlFileError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TomlFileError(f"{path}: not valid TOML: {exc}") from exc
