"""The app a process counts as comes from its verified program; a unit name only hints."""

from __future__ import annotations

import pytest

from agent.core.attribution import attribute


@pytest.mark.parametrize(
    ("owners", "hint", "expected"),
    [
        ({"game"}, "phone", "game"),  # a renamed scope: the program wins
        ({"game"}, None, "game"),
        ({"writer", "calc"}, "calc", "calc"),  # a shared launcher: the hint picks
        ({"writer", "calc"}, "phone", None),  # ... only among its own apps
        ({"writer", "calc"}, None, None),
        (set(), "phone", None),  # no app's program: the unit name alone counts for nothing
    ],
)
def test_attribute(owners: set[str], hint: str | None, expected: str | None) -> None:
    assert attribute(frozenset(owners), hint) == expected
