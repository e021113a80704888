"""Pairing as the tablet shows it: the session helper (the child's screen, with
python-dbusmock's notification daemon) shows the pairing code with the QR image, then the
SAS with "Same" / "Different"; the tap on "Same" finishes the pairing through the real
dashboard, and "Different" refuses it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dbus_fast.aio import MessageBus
from support.dashboard_clients import GuardianClient
from support.dashboard_server import ThreadServer
from support.notifications import FakeNotifications
from support.sync_device import SyncedDevice, until

from agent.api.guardian_service import guardian_object
from agent.api.service import AgentService
from agent.dev import devbus
from agent.helper.session_helper import SessionHelper
from agent.trust.control import TrustControl
from protocol.pairing import Offer, Reveal


@pytest.mark.parametrize("answer", ["pairing-same", "pairing-different"])
async def test_the_child_sees_the_code_and_the_qr_then_the_sas_and_taps(
        answer: str, tmp_path: Path, server: ThreadServer, make_guardian: Callable[..., GuardianClient],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    system = devbus.start_bus(permissive=True)
    session = devbus.start_bus(system=False, agent_policy=None)
    session.start_mock("notification_daemon", system=False)
    synced = await SyncedDevice.start(tmp_path / "device", server.url)
    service = AgentService(synced.device.controller, os.getuid(), bus_address=system.address)
    service.export(guardian_object(TrustControl(synced.device.trust, synced.sync)))
    synced.sync.on_change = service.refresh
    await service.start()
    helper = SessionHelper(system_address=system.address, session_address=session.address)
    await helper.start()
    notes = await MessageBus(bus_address=session.address).connect()
    guardian = make_guardian()
    try:
        synced.sync.start_pairing()
        await until(lambda: synced.sync.ticket is not None, what="a code")
        assert synced.sync.ticket is not None
        shown: list[list[Any]] = []

        async def wait_note(text: str) -> list[Any]:
            """The notification showing `text` (others may come first: the device runs on
            the real clock, and from 22:00 in Shanghai the curfew's notice is on screen too)."""
            deadline = time.monotonic() + 10
            while True:
                shown[:] = await FakeNotifications(notes).notifies()
                found = [note for note in shown if text in note[4]]
                if found:
                    return found[-1]
                assert time.monotonic() < deadline, shown
                await asyncio.sleep(0.02)

        code = synced.sync.ticket.code
        code_note = await wait_note(f"{code[:4]} {code[4:]}")
        assert Path(code_note[6]["image-path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the QR code
        claimed = await asyncio.to_thread(guardian.ok, "POST", "/api/v1/pairing/claim", json={"code": code})
        gp = guardian.ref.start_pairing(Offer.from_json(claimed["offer"]))
        session_id = claimed["session"]
        await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/pairing/{session_id}/response",
                                json=gp.response().to_json())
        r = await asyncio.to_thread(guardian.call, "GET", f"/api/v1/pairing/{session_id}/reveal",
                                    params={"wait": 10})
        sas = gp.on_reveal(Reveal.from_json(r.json()))
        sas_note = await wait_note(f"{sas[:3]} {sas[3:]}")  # in the child's language (zh-CN by default)
        assert sas_note[5][0::2] == ["pairing-same", "pairing-different"]
        notice = await asyncio.to_thread(guardian.ok, "GET", "/api/v1/consent/notice", params={"language": "en"})
        await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/pairing/{session_id}/consent", json={
            "version": notice["version"], "language": "en", "accepted": True, "usage_reports": True,
            "push_notifications": False})
        complete = guardian.ref.finish_pairing(gp, int(time.time()))
        ids = [i for i, _ in complete.messages]
        await asyncio.to_thread(guardian.ok, "POST", f"/api/v1/pairing/{session_id}/complete", json={
            "complete": complete.to_json(),
            "meta": [{"id": ids[0], "type": "consent", "seq": 0}, {"id": ids[1], "type": "decision", "seq": 0}]})
        await FakeNotifications(notes).click(helper.pairing_id, answer)
        if answer == "pairing-same":
            await until(lambda: synced.device.trust.store.paired, what="paired by the child's tap")
        else:
            await until(lambda: synced.sync.ticket is None, what="the pairing refused")
            assert not synced.device.trust.store.paired
            r = await asyncio.to_thread(guardian.call, "GET", f"/api/v1/pairing/{session_id}/paired",
                                        params={"wait": 10})
            assert r.status_code in (200, 409) and "aborted" in r.text, r.text
    finally:
        await helper.stop()
        notes.disconnect()
        await service.stop()
        await synced.stop()
        session.stop()
        system.stop()

