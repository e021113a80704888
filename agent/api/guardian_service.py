"""`org.minormode.Guardian1` at /org/minormode/Guardian1: the device's trust in its
guardians, on the agent's bus name beside Agent1 (one object per concept).

Reading the trust state is for the child and root (the child's screen shows pairing's
code and SAS); pairing and delivering signed messages are root's (the sync client does the
same in-process; root uses these for support, the production line and tests). StartPairing
and PairingAbort declare a polkit action too: an adult at the tablet authenticated as an
administrator may start or stop pairing mode (the guardian still confirms the SAS). Every
method is a row of `METHODS` with its role, like Agent1's. Documented in
config/dbus/org.minormode.Guardian1.xml; a test checks the live introspection against it.
"""

from __future__ import annotations

from typing import Annotated, Any

from dbus_fast import Variant
from dbus_fast.annotations import DBusBool, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.constants import PropertyAccess
from dbus_fast.introspection import Interface
from dbus_fast.service import ServiceInterface, dbus_property, dbus_signal

from agent.api import validate
from agent.api.guardian_port import GuardianPort, TrustInfo
from agent.api.service import BusObject, MethodSpec, Role, table_introspection

INTERFACE = "org.minormode.Guardian1"
OBJECT_PATH = "/org/minormode/Guardian1"
MAX_JSON = 1_200_000
PAIRING_ACTION = "org.minormode.pairing"  # an adult at the tablet starts or stops pairing (polkit)
SignatureSS = Annotated[list[Any], DBusSignature("ss")]


def _json_text(name: str, value: str) -> str:
    if len(value) > MAX_JSON:
        raise validate.InvalidArgumentError(f"{name}: {len(value)} characters, at most {MAX_JSON}")
    return value


def _get_trust(port: GuardianPort, _args: list[Any]) -> list[Any]:
    return [trust_dict(port.trust_info())]


def _offer(port: GuardianPort, args: list[Any]) -> list[Any]:
    return [port.pairing_offer(validate.text("session", args[0], 64))]


def _respond(port: GuardianPort, args: list[Any]) -> list[Any]:
    return list(port.pairing_respond(_json_text("response", args[0])))


def _complete(port: GuardianPort, args: list[Any]) -> list[Any]:
    return [True, port.pairing_complete(_json_text("complete", args[0]), bool(args[1]))]


def _abort(port: GuardianPort, _args: list[Any]) -> list[Any]:
    port.pairing_abort()
    return []


def _start_pairing(port: GuardianPort, _args: list[Any]) -> list[Any]:
    return [port.start_pairing()]


def _confirm_pairing(port: GuardianPort, args: list[Any]) -> list[Any]:
    port.confirm_pairing(bool(args[0]))
    return []


def _deliver(port: GuardianPort, args: list[Any]) -> list[Any]:
    got = port.deliver(validate.text("message_id", args[0], 64), _json_text("sealed", args[1]))
    return [got.result, got.reason, got.ack]


def _deliver_keyring(port: GuardianPort, args: list[Any]) -> list[Any]:
    return [True, port.deliver_keyring(_json_text("entries", args[0]))]


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("GetTrust", (), (("trust", "a{sv}"),), Role.READER, _get_trust),
    MethodSpec("PairingOffer", (("session", "s"),), (("offer", "s"),), Role.ADMIN, _offer, changes=True),
    MethodSpec("PairingRespond", (("response", "s"),), (("reveal", "s"), ("sas", "s")), Role.ADMIN,
               _respond, changes=True),
    MethodSpec("PairingComplete", (("complete", "s"), ("sas_confirmed", "b")),
               (("ok", "b"), ("message", "s")), Role.ADMIN, _complete, changes=True),
    MethodSpec("PairingAbort", (), (), Role.ADMIN, _abort, changes=True, action=PAIRING_ACTION),
    MethodSpec("StartPairing", (), (("state", "s"),), Role.ADMIN, _start_pairing, changes=True,
               action=PAIRING_ACTION),
    MethodSpec("ConfirmPairing", (("same", "b"),), (), Role.READER, _confirm_pairing, changes=True),
    MethodSpec("Deliver", (("message_id", "s"), ("sealed", "s")),
               (("result", "s"), ("reason", "s"), ("ack", "s")), Role.ADMIN, _deliver, changes=True),
    MethodSpec("DeliverKeyring", (("entries", "s"),), (("ok", "b"), ("message", "s")), Role.ADMIN,
               _deliver_keyring, changes=True),
)}
SIGNAL_ARGS: dict[str, tuple[str, ...]] = {"PairingChanged": ("state", "sas")}


def trust_dict(info: TrustInfo) -> dict[str, Variant]:
    return {
        "Paired": Variant("b", info.paired), "Family": Variant("s", info.family),
        "DeviceId": Variant("s", info.device_id),
        "Guardians": Variant("a(ss)", [list(g) for g in info.guardians]),
        "PolicyVersion": Variant("u", info.policy_version), "PolicySigner": Variant("s", info.policy_signer),
        "Pairing": Variant("s", info.pairing), "Sas": Variant("s", info.sas),
        "Outbox": Variant("u", info.outbox), "Dashboard": Variant("s", info.dashboard),
        "Code": Variant("s", info.code), "QrUrl": Variant("s", info.qr_url),
        "PairingExpires": Variant("x", info.pairing_expires), "Connected": Variant("b", info.connected),
        "LastContact": Variant("x", info.last_contact), "LastError": Variant("s", info.last_error),
        "PendingUploads": Variant("u", info.pending_uploads),
    }


class Guardian1Interface(ServiceInterface):
    def __init__(self, port: GuardianPort) -> None:
        super().__init__(INTERFACE)
        self.port = port
        self.last: tuple[str, str] = ("", "")

    def introspect(self) -> Interface:
        return table_introspection(super().introspect(), METHODS, SIGNAL_ARGS)

    @dbus_property(access=PropertyAccess.READ, name="Paired")
    def paired_property(self) -> DBusBool:
        return self.port.trust_info().paired

    @dbus_property(access=PropertyAccess.READ, name="Pairing")
    def pairing_property(self) -> DBusStr:
        return self.port.trust_info().pairing

    @dbus_property(access=PropertyAccess.READ, name="PolicyVersion")
    def policy_version_property(self) -> DBusUInt32:
        return self.port.trust_info().policy_version

    @dbus_signal(name="PairingChanged")
    def pairing_changed(self, state: str, sas: str) -> SignatureSS:
        return [state, sas]

    def refresh(self) -> None:
        """Emit PairingChanged when the pairing state or SAS changed (the child's screen)."""
        info = self.port.trust_info()
        now = (info.pairing if not info.code or info.pairing != "idle" else "offered", info.sas)
        if now != self.last:
            self.last = now
            self.pairing_changed(*now)


def guardian_object(port: GuardianPort) -> BusObject:
    iface = Guardian1Interface(port)
    return BusObject(OBJECT_PATH, INTERFACE, iface, METHODS, port, on_change=iface.refresh)
