"""How minormodectl says amounts, durations and times to a person (the guardian at the
tablet): yuan rather than minor units, minutes rather than seconds, local clock times in the
policy's timezone rather than epoch seconds. `--json` keeps the raw values (agent/cli/output.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

# Symbols of the currencies a family is likely to set; any other is shown by its ISO code.
SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
# ISO 4217 minor-unit exponents that are not 2.
EXPONENTS = {"JPY": 0, "KRW": 0}


def money(minor: int, currency: str) -> str:
    """An integer amount of minor units as a person reads it: 5000 CNY -> "¥50.00"."""
    exponent = EXPONENTS.get(currency, 2)
    sign, minor = ("-" if minor < 0 else ""), abs(minor)
    whole, part = divmod(minor, 10**exponent)
    amount = f"{whole:,}" + (f".{part:0{exponent}d}" if exponent else "")
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def minutes(seconds: int) -> str:
    """A duration in whole minutes, rounded down (what is left is never overstated)."""
    return f"{seconds // 60} min"


def clock(instant: datetime, tz: tzinfo, *, today: date | None = None) -> str:
    """A local clock time, with the date only when it is not `today` ("16:30", "Tue 24 Nov 07:00")."""
    local = instant.astimezone(tz)
    if today is not None and local.date() == today:
        return f"{local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"


def when(instant: datetime, tz: tzinfo) -> str:
    """A date and local clock time for a listing: "2026-11-23 16:30"."""
    return f"{instant.astimezone(tz):%Y-%m-%d %H:%M}"


def epoch_clock(unix: int, tz: tzinfo, *, today: date | None = None) -> str:
    """`clock` for the unix seconds the agent's D-Bus properties carry."""
    return clock(datetime.fromtimestamp(unix, UTC), tz, today=today)
