"""A private system-like bus per test with python-dbusmock's logind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from dbus_fast.aio import MessageBus
from support.sessionbus import FakeLogind

from agent.dev import devbus


@pytest.fixture
def system_bus() -> Iterator[devbus.PrivateBus]:
    bus = devbus.start_bus()
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture
def logind_bus(system_bus: devbus.PrivateBus) -> devbus.PrivateBus:
    system_bus.start_mock("logind")
    devbus.emulate_screen_locker(system_bus)
    return system_bus


@pytest.fixture
async def fake_logind(logind_bus: devbus.PrivateBus) -> AsyncIterator[FakeLogind]:
    bus = await MessageBus(bus_address=logind_bus.address).connect()
    try:
        yield FakeLogind(bus)
    finally:
        bus.disconnect()


