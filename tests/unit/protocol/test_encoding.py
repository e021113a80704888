"""The strict readers every signed byte goes through: one meaning per byte string."""

from __future__ import annotations

import pytest

from protocol.encoding import Fields, b64, loads, unb64, unhex
from protocol.errors import ProtocolError


def test_base64url_round_trips_and_refuses_padding_and_other_alphabets() -> None:
    for data in (b"", b"\x00", b"\xff\xfe", bytes(range(64))):
        assert unb64(b64(data), "x") == data
    for bad in ("AA==", "A", "a+b/", "ab cd", "AB"):  # "AB" has non-zero trailing bits
        with pytest.raises(ProtocolError) as err:
            unb64(bad, "field.sig")
        assert err.value.where == "field.sig"


def test_hex_is_lowercase_and_exact_length() -> None:
    assert unhex("00ff", "x", 2) == b"\x00\xff"
    for bad in ("00FF", "00f", "00ff00", "zz00", 7):
        with pytest.raises(ProtocolError):
            unhex(bad, "x", 2)


@pytest.mark.parametrize("text, why", [
    (b'{"a":1,"a":2}', "duplicate"),
    (b'{"a":NaN}', "NaN"),
    (b'{"a":Infinity}', "Infinity"),
    (b"\xff", "utf-8"),
    (b"[" * 100_000 + b"]" * 100_000, "recursion"),
])
def test_loads_refuses_what_two_readers_could_read_differently(text: bytes, why: str) -> None:
    with pytest.raises(ProtocolError) as err:
        loads(text, "body", 1 << 20)
    assert err.value.where == "body"


def test_loads_bounds_size() -> None:
    with pytest.raises(ProtocolError, match="at most 10"):
        loads(b"[" + b"1," * 10 + b"1]", "body", 10)


def test_fields_names_the_key_and_refuses_unknown_keys_and_wrong_types() -> None:
    f = Fields({"n": True, "s": "x", "extra": 1}, "body.payload")
    with pytest.raises(ProtocolError) as err:
        f.int_("n")  # JSON true is not an integer, although Python's bool is one
    assert err.value.where == "body.payload.n"
    assert f.text("s", max_len=3) == "x"
    with pytest.raises(ProtocolError) as err:
        f.done()
    assert err.value.where == "body.payload.extra"
    with pytest.raises(ProtocolError, match="control"):
        Fields({"s": "a\x00b"}, "p").text("s", max_len=10)
    with pytest.raises(ProtocolError, match="outside"):
        Fields({"i": 2**53}, "p").int_("i")
