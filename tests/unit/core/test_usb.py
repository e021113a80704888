"""The USB model: rules that judge ALL interfaces, verdicts that agree with them, the
policy's `usb` table (each bad input named), and every generated rule read back by
USBGuard's own parser (`usbguard-rule-parser`) unchanged."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.parse import PolicyError, policy_from_mapping, policy_to_mapping
from agent.core.usb import (
    DeviceMatch,
    UsbClass,
    UsbDevice,
    UsbRules,
    class_rule,
    parse_device_rule,
    provisioned_rule,
    rule_set,
    verdict,
)

KEYBOARD = UsbDevice("046d", "c31c", ("03:01:01",), "K1", "Keyboard")
MOUSE = UsbDevice("046d", "c077", ("03:01:02",), "", "Mouse")
STICK = UsbDevice("0781", "5567", ("08:06:50",), "C1", "Cruzer")
COMBO = UsbDevice("1234", "5678", ("03:01:01", "08:06:50"), "X1", "Keyboard+Storage")
ETHERNET = UsbDevice("0b95", "1790", ("02:06:00", "0a:00:00"), "E1")
RNDIS = UsbDevice("18d1", "4ee3", ("e0:01:03", "0a:00:00"), "R1")
SERIAL = UsbDevice("2341", "0043", ("02:02:01", "0a:00:00"), "S1")
WIFI = UsbDevice("0bda", "8179", ("ff:ff:ff",), "W1")
ODD = UsbDevice("abcd", "0001", ("dc:01:01",), "")


NO_RULES = UsbRules()


def allowed(device: UsbDevice, rules: UsbRules = NO_RULES, provisioned: tuple[UsbDevice, ...] = ()) -> bool:
    return verdict(device, provisioned, rules).allowed


def test_by_default_keyboards_and_mice_in_everything_else_out() -> None:
    assert allowed(KEYBOARD) and allowed(MOUSE)
    for device in (STICK, COMBO, ETHERNET, RNDIS, SERIAL, WIFI, ODD):
        assert not allowed(device), device
    assert verdict(ODD, (), UsbRules()).classes == ("unknown:dc",)


def test_a_composite_needs_every_interface_allowed() -> None:
    assert not allowed(COMBO)
    assert allowed(COMBO, UsbRules(allow_classes=frozenset({UsbClass.STORAGE})))
    # a class rule of one class never lets a composite with another class in
    assert not allowed(ETHERNET, UsbRules(allow_classes=frozenset({UsbClass.SERIAL})))
    assert "match-all" in class_rule(UsbRules()) and "one-of" not in class_rule(UsbRules())


def test_guardian_allows_a_class_or_one_device_or_one_unit() -> None:
    assert allowed(ETHERNET, UsbRules(allow_classes=frozenset({UsbClass.NETWORK})))
    assert allowed(RNDIS, UsbRules(allow_classes=frozenset({UsbClass.NETWORK})))
    assert allowed(SERIAL, UsbRules(allow_devices=(DeviceMatch("2341", "0043"),)))
    assert allowed(SERIAL, UsbRules(allow_devices=(DeviceMatch("2341", "0043", "S1"),)))
    assert not allowed(SERIAL, UsbRules(allow_devices=(DeviceMatch("2341", "0043", "S2"),)))


def test_provisioned_devices_are_pinned_to_their_interfaces_and_port() -> None:
    builtin = UsbDevice("0424", "ec00", ("ff:00:ff",), "B1", "LAN", "h4sh=", "1-1")
    assert allowed(builtin, provisioned=(builtin,))
    assert not allowed(UsbDevice("0424", "ec00", ("ff:00:ff",), "B1", "LAN", "h4sh=", "1-2"), provisioned=(builtin,))
    spoof = UsbDevice("0424", "ec00", ("ff:00:ff", "08:06:50"), "B1", "LAN", "h4sh=", "1-1")
    assert not allowed(spoof, provisioned=(builtin,))
    assert provisioned_rule(builtin) == 'allow id 0424:ec00 serial "B1" hash "h4sh=" via-port "1-1" with-interface ff:00:ff'


def test_device_rules_as_usbguard_lists_them_are_read() -> None:
    target, device = parse_device_rule(
        'block id 1234:5678 serial "X\\"1" name "Combo" hash "abc=" parent-hash "p=" via-port "1-7" '
        'with-interface { 03:01:01 08:06:50 } with-connect-type ""')
    assert target == "block"
    assert device == UsbDevice("1234", "5678", ("03:01:01", "08:06:50"), 'X"1', "Combo", "abc=", "1-7")


def _policy(usb: object) -> dict[str, object]:
    return {"version": 1, "age_band": "8-12", "timezone": "Asia/Shanghai", "usb": usb}


def test_the_policy_usb_table_round_trips() -> None:
    policy = policy_from_mapping(_policy({"allow_classes": ["storage", "hid"],
                                          "allow_devices": ["0781:5567", "2341:0043:S 1"]}))
    assert policy.usb == UsbRules(frozenset({UsbClass.STORAGE}),
                                  (DeviceMatch("0781", "5567"), DeviceMatch("2341", "0043", "S 1")))
    assert policy_to_mapping(policy)["usb"] == {"allow_classes": ["storage"],
                                                "allow_devices": ["0781:5567", "2341:0043:S 1"]}
    assert policy_from_mapping(_policy({})).usb == UsbRules()


@pytest.mark.parametrize(("usb", "key", "words"), [
    ({"allow_classes": ["disk"]}, "usb.allow_classes", "unknown USB class"),
    ({"allow_classes": "storage"}, "usb.allow_classes", "must be a list"),
    ({"allow_devices": ["0781-5567"]}, "usb.allow_devices", "not a device"),
    ({"allow_devices": ["0781:55678"]}, "usb.allow_devices", "not a device"),
    ({"allow_devices": ["0781:5567:"]}, "usb.allow_devices", "not a device"),
    ({"allow_devices": ["0781:5567:\u00e9"]}, "usb.allow_devices", "not a device"),
    ({"allow_devices": ["0781:5567:a\nb"]}, "usb.allow_devices", "not a device"),
    ({"allow_devices": [1]}, "usb.allow_devices", "must be a list"),
    ({"allow": ["storage"]}, "usb.allow", "unknown key"),
    ("storage", "usb", "must be a table"),
])
def test_bad_usb_keys_are_named(usb: object, key: str, words: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy_from_mapping(_policy(usb))
    assert any(p.key == key and words in p.message for p in err.value.problems), err.value


def test_a_bad_usb_key_in_toml_names_its_line() -> None:
    from agent.core.parse import parse_policy_text

    text = b'version = 1\nage_band = "8-12"\ntimezone = "Asia/Shanghai"\n[usb]\nallow_classes = ["disk"]\n'
    with pytest.raises(PolicyError) as err:
        parse_policy_text(text, "p.toml")
    assert "p.toml:5: usb.allow_classes" in str(err.value)


PARSER = shutil.which("usbguard-rule-parser")
_hex4 = st.text("0123456789abcdef", min_size=4, max_size=4)
_iface = st.tuples(st.text("0123456789abcdef", min_size=2, max_size=2),
                   st.text("0123456789abcdef", min_size=2, max_size=2),
                   st.text("0123456789abcdef", min_size=2, max_size=2)).map(":".join)
_serial = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=30)
_devices = st.builds(UsbDevice, _hex4, _hex4, st.lists(_iface, min_size=1, max_size=4, unique=True).map(tuple),
                     _serial, st.just(""), st.text("abcdefABCDEF0123456789+/=", max_size=44),
                     st.sampled_from(["", "1-1", "1-1.2", "usb1"]))
_rules = st.builds(UsbRules, st.frozensets(st.sampled_from(list(UsbClass))),
                   st.lists(st.builds(DeviceMatch, _hex4, _hex4, st.none() | _serial), max_size=3).map(tuple))


@pytest.mark.skipif(PARSER is None, reason="needs Debian's usbguard (usbguard-rule-parser)")
@settings(max_examples=40, deadline=None)
@given(st.lists(_devices, max_size=3), _rules)
def test_usbguard_reads_every_generated_rule_back_unchanged(provisioned: list[UsbDevice], rules: UsbRules) -> None:
    assert PARSER is not None
    for rule in rule_set(provisioned, rules):
        out = subprocess.run([PARSER, rule], capture_output=True, text=True, check=False)
        assert out.returncode == 0, (rule, out.stdout, out.stderr)
        assert f"OUTPUT: {rule}\n" in out.stdout, (rule, out.stdout)


@pytest.mark.parametrize(("text", "words"), [
    ("", "no target"),
    ('block id 12:34 serial "x"', "not vvvv:pppp"),
    ("block id 1234:5678 with-interface { 03:01:01", "unclosed"),
    ("block id 1234:5678 with-interface { 3:1:1 }", "not cc:ss:pp"),
    ('block id 1234:5678 serial', "unexpected"),
    ('block id 1234:5678 serial "open', "cannot read"),
])
def test_unreadable_device_rules_are_refused_naming_why(text: str, words: str) -> None:
    from agent.core.usb import DeviceRuleError

    with pytest.raises(DeviceRuleError, match=words):
        parse_device_rule(text)
