"""Age-band defaults from the Guide, the Regulations and the game regulator's notices.

Every value here is what a guardian sees as "band default" and may change or waive.
Sources (see ../shared/REQUIREMENTS.md): daily totals and the 22:00-06:00 curfew and the
30-minute rest reminder from the minor-mode Guide; spending caps from the game regulator's
2019 notice (under 8: no paid services; 8-16: 50 a transaction, 200 a month; 16-18: 100
and 400, in CNY); game hours from the 2021 notice (Fri/Sat/Sun and holidays, 20:00-21:00).
"""

from __future__ import annotations

from typing import Any

from agent.core.policy import LOCK_GRACE_DEFAULT, AgeBand

CNY_FEN = 100  # minor units per yuan

# Freedesktop categories (Desktop Menu Specification) plus our own for the always-allowed set.
ALWAYS_ALLOWED_CATEGORIES = ["Telephony", "Emergency", "Accessibility", "X-Minormode-System"]
# In a curfew or a guardian's "lock now" only these stay: emergency and basic system functions.
EMERGENCY_CATEGORIES = ["Emergency", "Accessibility", "X-Minormode-System"]
EDUCATION_CATEGORIES = ["Education", "Science", "Dictionary", "Languages", "Math"]
GAME_CATEGORIES = ["Game"]
HARMFUL_CATEGORIES = ["adult", "gambling", "violence", "drugs", "self-harm", "proxies-vpn-doh"]

DAILY_MINUTES: dict[AgeBand, int] = {
    AgeBand.UNDER_3: 40,
    AgeBand.AGE_3_8: 40,
    AgeBand.AGE_8_12: 60,
    AgeBand.AGE_12_16: 60,
    AgeBand.AGE_16_18: 120,
}

# (per transaction, per day, per month, ask above) in yuan.
SPENDING_YUAN: dict[AgeBand, tuple[int, int, int, int]] = {
    AgeBand.UNDER_3: (0, 0, 0, 0),
    AgeBand.AGE_3_8: (0, 0, 0, 0),
    AgeBand.AGE_8_12: (50, 100, 200, 0),
    AgeBand.AGE_12_16: (50, 100, 200, 20),
    AgeBand.AGE_16_18: (100, 200, 400, 50),
}

_YOUNG = (AgeBand.UNDER_3, AgeBand.AGE_3_8)


def band_defaults(band: AgeBand) -> dict[str, Any]:
    """The band's defaults in the policy file's own structure (tables of plain values).

    Keeping them in the file's shape means one parser builds every Policy and the
    guardian's file is merged over these key by key.
    """
    per_tx, per_day, per_month, ask = SPENDING_YUAN[band]
    young = band in _YOUNG
    return {
        "retention_days": 180,
        "budget": {"daily_minutes": DAILY_MINUTES[band]},
        "schedule": {},
        "curfew": {"enabled": True, "every_day": ["22:00-06:00"]},
        "school": {
            "enabled": False,
            "mode": "education_only",
            "hours": {d: ["08:00-16:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": [],
        },
        "games": {
            "enabled": True,
            "hours": {d: ["20:00-21:00"] for d in ("fri", "sat", "sun")},
            "holiday_hours": ["20:00-21:00"],
            "holidays": [],
            "categories": GAME_CATEGORIES,
        },
        "rest": {"enabled": True, "after_minutes": 30, "break_minutes": 10, "enforce": young},
        "apps": {
            "default": "deny" if young or band is AgeBand.AGE_8_12 else "allow",
            "allowed": [],
            "allowed_categories": [
                "Education", "Science", "Game", "AudioVideo", "Graphics", "Utility", "Office",
                *(["Network"] if not young else []),
            ],
            "blocked": [],
            "blocked_categories": [],
            "always_allowed": [],
            "always_allowed_categories": ALWAYS_ALLOWED_CATEGORIES,
            "education_categories": EDUCATION_CATEGORIES,
            "emergency": [],
            "emergency_categories": EMERGENCY_CATEGORIES,
            "limits": {},
            "categories": {},
            "payers": [],
        },
        "spending": {
            "currency": "CNY",
            "per_transaction": per_tx * CNY_FEN,
            "per_day": per_day * CNY_FEN,
            "per_month": per_month * CNY_FEN,
            "ask_above": ask * CNY_FEN,
        },
        "filter": {
            "block_categories": [
                *HARMFUL_CATEGORIES,
                *(["social"] if band in (*_YOUNG, AgeBand.AGE_8_12) else []),
            ],
            "allowlist_only": band is AgeBand.UNDER_3,
            "allowlist_only_during": ["curfew"] if young else [],
            "safesearch": True,
            "youtube": "strict" if band in (*_YOUNG, AgeBand.AGE_8_12) else "moderate",
            "allow": [],
            "block": [],
        },
        "enforcement": {
            "warn_minutes": [5, 1],
            "lock_grace_seconds": LOCK_GRACE_DEFAULT,
            "time_up": "limited",  # calls and homework apps stay usable; "lock" locks the screen
            "language": "zh-CN",
        },
    }
