"""The JSON lines between the supervisor and the gate process: one definition, both ways,
and the wire form itself (a gate and a supervisor of different builds must agree)."""

from __future__ import annotations

import json

import pytest

from agent.execgate.gate import _short
from agent.execgate.loop import Blocked
from agent.execgate.messages import (
    MAX_LINE,
    BlockedReport,
    MessageError,
    Ping,
    Pong,
    Ready,
    SetTable,
    decode_from_gate,
    decode_to_gate,
    encode,
)
from agent.execgate.table import FileRule, GateConfig, GateTable, table_to_json

TABLE = GateTable(
    7,
    GateConfig(base_prefixes=("/usr/libexec/",), exempt_uids=frozenset({1001})),
    by_inode={(1, 10): FileRule("org.example.Game", False, "blocked")},
    by_hash={"h": FileRule("org.example.Chess", True)},
    by_path={"/usr/bin/game": FileRule("org.example.Game", False, "blocked")},
    app_prefixes=(("/var/lib/flatpak/app/x/", FileRule("x", False, "not_allowed")),),
    script_chains={(1, 12): ((1, 20), (1, 21))},
)
BLOCKED = Blocked("org.example.Game", "blocked", "/usr/bin/game", 1000)


def test_every_command_to_the_gate_survives_the_line() -> None:
    for message in (SetTable(TABLE), Ping(41)):
        line = encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode_to_gate(line[:-1]) == message


def test_every_report_from_the_gate_survives_the_line() -> None:
    for message in (Ready(7, 4242), Pong(41, 1234), BlockedReport(BLOCKED)):
        line = encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode_from_gate(line[:-1]) == message


def test_the_wire_form_is_the_documented_one() -> None:
    """What a peer of another build writes and reads (agent/execgate/README.md)."""
    assert json.loads(encode(Ping(3))) == {"ping": 3}
    assert json.loads(encode(Ready(7, 9))) == {"ready": 7, "pid": 9}
    assert json.loads(encode(Pong(3, 5))) == {"pong": 3, "events": 5}
    assert json.loads(encode(BlockedReport(BLOCKED))) == {"blocked": {
        "app_id": "org.example.Game", "reason": "blocked", "path": "/usr/bin/game", "uid": 1000}}
    assert json.loads(encode(SetTable(TABLE))) == {"table": json.loads(json.dumps(table_to_json(TABLE)))}
    assert decode_to_gate(b'{"table": %s}' % json.dumps(table_to_json(TABLE)).encode()) == SetTable(TABLE)
    assert decode_from_gate(b'{"pong": 3}') == Pong(3, 0)


def test_unknown_kinds_are_ignored_and_garbage_is_an_error() -> None:
    assert decode_to_gate(b'{"resize": 1}') is None
    assert decode_from_gate(b'{"hello": "newer gate"}') is None
    for garbage in (b"not json", b'["ready"]', b""):
        with pytest.raises(MessageError):
            decode_from_gate(garbage)
        with pytest.raises(MessageError):
            decode_to_gate(garbage)


def test_a_report_of_a_very_long_path_stays_one_atomic_pipe_write() -> None:
    long = Blocked(None, "unknown", "/home/child/" + "x" * 10_000, 1000)
    line = encode(BlockedReport(_short(long)))
    assert len(line) <= MAX_LINE
    decoded = decode_from_gate(line)
    assert isinstance(decoded, BlockedReport) and decoded.blocked.path.endswith("x" * 900)
