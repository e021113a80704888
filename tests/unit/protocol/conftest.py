"""Fixtures for the protocol tests."""

from __future__ import annotations

import pytest
from support.protocol_family import Family, make_family


@pytest.fixture
def family() -> Family:
    return make_family()
