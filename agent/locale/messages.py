"""The child-facing sentences in a language: the compiled catalogues, loaded with gettext.

Adapters never write user-facing text themselves: they call these functions with the
child's language (the policy's `enforcement.language`, e.g. "zh-CN"); the keys and the
way sentences are built are the pure core's (agent.core.messages), the words are the
catalogues' (agent/locale/<lang>/LC_MESSAGES/minormode.mo, compiled from the `.po` beside
it by agent.locale.compile). An unknown language falls back to zh-CN, the product's
default. A catalogue that is missing, out of date with its `.po`, or lacks a key fails on
first use with an error naming the file: never a key shown to the child.
"""

from __future__ import annotations

import gettext
from datetime import timedelta
from functools import cache
from pathlib import Path

from agent.core import messages as core
from agent.core.decision import AppBlockReason, LockReason
from agent.core.messages import DEFAULT_LANGUAGE, DOMAIN, BackAt, Key, back_at
from agent.core.parse import LANGUAGES as POLICY_LANGUAGES
from agent.locale import LOCALE_DIR

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "BackAt", "CatalogueError", "Key", "app_blocked", "app_stopped",
           "back_at", "catalogue", "code_wait", "load", "load_all", "lock_reason", "message", "time_up",
           "warning"]

LANGUAGES = frozenset(POLICY_LANGUAGES)  # every language a policy may choose has a catalogue


class CatalogueError(RuntimeError):
    """A catalogue the agent cannot use (a build or packaging fault)."""


def gettext_name(lang: str) -> str:
    """The policy's language tag as gettext names its directory: "zh-CN" is zh_CN."""
    return lang.replace("-", "_")


@cache
def catalogue(lang: str) -> core.Catalogue:
    """`lang`'s translations (zh-CN's for a language we have none for), checked once."""
    return load(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def load_all() -> None:
    """Load every language's catalogue now: a bad install fails at the agent's start, not at
    the first warning (CatalogueError)."""
    for lang in sorted(LANGUAGES):
        catalogue(lang)


def load(lang: str, root: Path = LOCALE_DIR) -> gettext.GNUTranslations:
    """`lang`'s compiled catalogue under `root`, refused if stale, absent or incomplete."""
    name = gettext_name(lang)
    mo = root / name / "LC_MESSAGES" / f"{DOMAIN}.mo"
    po = mo.with_suffix(".po")
    fix = "run scripts/setup (python -m agent.locale.compile)"
    try:
        if po.exists() and po.stat().st_mtime > mo.stat().st_mtime:
            raise CatalogueError(f"{mo} is older than {po}: {fix}")
        translations = gettext.translation(DOMAIN, root, languages=[name])
    except FileNotFoundError as exc:
        raise CatalogueError(f"no compiled catalogue {mo}: {fix}") from exc
    # gettext answers a missing message with its id: a key on the child's screen. Refuse.
    # A counted key is only ever looked up with ngettext (as core.message does): bookworm's
    # Python 3.11.2 answers gettext() of a plural-only msgid with the id (3.11.7 falls
    # back to its singular form), which made the image's agent refuse good catalogues.
    def absent(k: str) -> bool:
        if k in core.COUNTED:
            return k in (translations.ngettext(k, k, 1), translations.ngettext(k, k, 2))
        return translations.gettext(k) == k

    missing = sorted(k for k in core.KEYS if absent(k))
    if missing:
        raise CatalogueError(f"{mo} lacks {', '.join(missing)}")
    return translations


def message(key: str, lang: str, **params: object) -> str:
    """The sentence for `key` in `lang`."""
    return core.message(catalogue(lang), key, **params)


def warning(minutes: int, lang: str, back: BackAt | None = None) -> str:
    return core.warning(catalogue(lang), minutes, back)


def lock_reason(reason: LockReason, lang: str, back: BackAt | None = None) -> str:
    return core.lock_reason(catalogue(lang), reason, back)


def time_up(reason: LockReason, lang: str, *, lock_screen: bool, emergency_only: bool,
            back: BackAt | None = None) -> str:
    return core.time_up(catalogue(lang), reason, lock_screen=lock_screen, emergency_only=emergency_only,
                        back=back)


def app_blocked(reason: AppBlockReason, lang: str) -> str:
    return core.app_blocked(catalogue(lang), reason)


def app_stopped(app: str | None, reason: str | None, lang: str) -> str:
    return core.app_stopped(catalogue(lang), app, reason)


def code_wait(wait: timedelta, lang: str) -> str:
    return core.code_wait(catalogue(lang), wait)
