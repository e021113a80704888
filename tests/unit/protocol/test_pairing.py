"""Pairing through a relay: honest runs agree, a key-swapping relay is caught by the SAS
or by the QR code, and nothing is kept from a pairing that did not finish."""

from __future__ import annotations

import pytest

from protocol.accept import ReplayState, open_guardian_message
from protocol.guardian import ReferenceGuardian
from protocol.keys import Identity
from protocol.messages import Consent, PolicyMessage, SetGuardianCode
from protocol.pairing import (
    Complete,
    DevicePairing,
    Offer,
    PairingError,
    QrPayload,
    Response,
    Reveal,
)

NOW = 1_796_000_000


def _relay(value: Offer | Response | Reveal | Complete) -> object:
    """What a relay passes on: JSON, re-read by the other side."""
    return type(value).from_json(value.to_json())


def test_honest_pairing_agrees_and_delivers_the_first_messages() -> None:
    device = Identity.generate(is_device=True, label="tablet")
    dp, g = DevicePairing(device), ReferenceGuardian()
    gp = g.start_pairing(_relay(dp.offer()))  # type: ignore[arg-type]
    reveal = dp.on_response(_relay(gp.response()))  # type: ignore[arg-type]
    assert gp.on_reveal(_relay(reveal)) == dp.sas  # type: ignore[arg-type]
    assert dp.sas is not None and len(dp.sas) == 6 and dp.sas.isdigit()
    complete = g.finish_pairing(gp, NOW, policy={"version": 1, "age_band": "8-12"})
    result = dp.on_complete(_relay(complete), sas_confirmed=True)  # type: ignore[arg-type]
    assert set(result.keyring.guardians) == {g.kid} and set(result.keyring.devices) == {device.id}
    kinds = []
    state = ReplayState()
    for mid, sealed in result.messages:
        got = open_guardian_message(sealed.encode(), mid, device, result.keyring, state, NOW)
        state = state.after(got.body, NOW)
        kinds.append(type(got.payload))
    assert kinds == [Consent, SetGuardianCode, PolicyMessage]


def test_a_key_swapping_relay_makes_the_two_sas_differ_and_the_device_refuses() -> None:
    """The relay runs one pairing with the device as a fake guardian and one with the
    guardian as a fake device; each side's SAS is fixed before the relay learns what it
    would need to make the other side's match."""
    device = Identity.generate(is_device=True)
    dp, g = DevicePairing(device), ReferenceGuardian()
    fake_device = DevicePairing(Identity.generate(is_device=True))
    fake_guardian = ReferenceGuardian()
    to_guardian = g.start_pairing(fake_device.offer())  # the guardian typed the code the relay answered
    to_device = fake_guardian.start_pairing(dp.offer())
    reveal_to_relay = dp.on_response(to_device.response())
    to_device.on_reveal(reveal_to_relay)
    guardian_sas = to_guardian.on_reveal(fake_device.on_response(to_guardian.response()))
    assert guardian_sas != dp.sas  # the people comparing screens see different numbers
    forged = fake_guardian.finish_pairing(to_device, NOW)
    with pytest.raises(PairingError, match="not confirmed"):
        dp.on_complete(forged, sas_confirmed=False)
    assert dp.state.value == "aborted"


def test_sas_is_spread_over_a_million_values() -> None:
    """Different nonces give different SAS values (a constant SAS would pass every test above)."""
    device = Identity.generate(is_device=True)
    seen = set()
    for _ in range(200):
        dp, g = DevicePairing(device), ReferenceGuardian()
        gp = g.start_pairing(dp.offer())
        gp.on_reveal(dp.on_response(gp.response()))
        seen.add(dp.sas)
    assert len(seen) >= 195


def test_the_qr_path_needs_no_sas_and_catches_a_swapped_guardian_key() -> None:
    device = Identity.generate(is_device=True)
    dp, g = DevicePairing(device), ReferenceGuardian()
    qr = QrPayload.from_url(dp.qr("12345678").url("https://dash.example"))
    gp = g.start_pairing(dp.offer(), qr=qr)
    reveal = dp.on_response(gp.response())
    gp.on_reveal(reveal)
    result = dp.on_complete(g.finish_pairing(gp, NOW), sas_confirmed=False)
    assert result.by_qr
    # A relay answering with its own guardian key cannot make the MAC.
    dp2 = DevicePairing(device)
    intruder = ReferenceGuardian().start_pairing(dp2.offer())
    forged = Response(intruder.guardian.public, intruder.nonce, None, bytes(32))
    with pytest.raises(PairingError, match="QR"):
        dp2.on_response(forged)
    with pytest.raises(PairingError):
        dp2.on_complete(Complete((), ()), sas_confirmed=True)


def test_the_qr_device_id_pins_the_device_keys() -> None:
    device = Identity.generate(is_device=True)
    dp = DevicePairing(device)
    qr = dp.qr("12345678")
    other = DevicePairing(Identity.generate(is_device=True))
    with pytest.raises(PairingError, match="scanned"):
        ReferenceGuardian().start_pairing(other.offer(), qr=qr)


def test_complete_must_add_exactly_this_device_by_the_guardian_who_answered() -> None:
    device = Identity.generate(is_device=True)
    dp, g, other = DevicePairing(device), ReferenceGuardian(), ReferenceGuardian()
    gp = g.start_pairing(dp.offer())
    gp.on_reveal(dp.on_response(gp.response()))
    # Another guardian's family with this device in it.
    og = other.start_pairing(dp.offer())
    og.device = device.public
    wrong = other.finish_pairing(og, NOW)
    with pytest.raises(PairingError):
        dp.on_complete(wrong, sas_confirmed=True)
    assert dp.state.value == "aborted"


@pytest.mark.parametrize("url", [
    "https://d/pair#v=2&c=12345678&d=" + "ab" * 16 + "&s=AAAAAAAAAAAAAAAAAAAAAA",
    "https://d/pair#v=1&c=1234&d=" + "ab" * 16 + "&s=AAAAAAAAAAAAAAAAAAAAAA",
    "https://d/pair#v=1&c=12345678&d=xyz&s=AAAAAAAAAAAAAAAAAAAAAA",
    "https://d/pair#v=1&c=12345678&d=" + "ab" * 16,
])
def test_bad_qr_links_are_refused(url: str) -> None:
    from protocol.errors import ProtocolError
    with pytest.raises(ProtocolError):
        QrPayload.from_url(url)
