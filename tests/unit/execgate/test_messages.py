"""The JSON lines between the supervisor and the gate process: one definition, both ways,
and the wire form itself (a gate and a supervisor of different builds must agree)."""

from __future__ import annotations

import json

import pytest

from agent.execgate import messages as m
from agent.execgate.gate import _short
from agent.execgate.loop import Blocked
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
    for message in (m.SetTable(TABLE), m.Ping(41)):
        line = m.encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert m.decode_to_gate(line[:-1]) == message


def test_every_report_from_the_gate_survives_the_line() -> None:
    for message in (m.Ready(7, 4242), m.Pong(41, 1234), m.BlockedReport(BLOCKED)):
        line = m.encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert m.decode_from_gate(line[:-1]) == message


def test_the_wire_form_is_the_documented_one() -> None:
    """What a peer of another build writes and reads (agent/execgate/README.md)."""
    assert json.loads(m.encode(m.Ping(3))) == {"ping": 3}
    assert json.loads(m.encode(m.Ready(7, 9))) == {"ready": 7, "pid": 9}
    assert json.loads(m.encode(m.Pong(3, 5))) == {"pong": 3, "events": 5}
    assert json.loads(m.encode(m.BlockedReport(BLOCKED))) == {"blocked": {
        "app_id": "org.example.Game", "reason": "blocked", "path": "/usr/bin/game", "uid": 1000}}
    assert json.loads(m.encode(m.SetTable(TABLE))) == {"table": json.loads(json.dumps(table_to_json(TABLE)))}
    assert m.decode_to_gate(b'{"table": %s}' % json.dumps(table_to_json(TABLE)).encode()) == m.SetTable(TABLE)
    assert m.decode_from_gate(b'{"pong": 3}') == m.Pong(3, 0)


def test_unknown_kinds_are_ignored_and_garbage_is_an_error() -> None:
    assert m.decode_to_gate(b'{"resize": 1}') is None
    assert m.decode_from_gate(b'{"hello": "newer gate"}') is None
    for garbage in (b"not json", b'["ready"]', b""):
        with pytest.raises(m.MessageError):
            m.decode_from_gate(garbage)
        with pytest.raises(m.MessageError):
            m.decode_to_gate(garbage)


def test_a_report_of_a_very_long_path_stays_one_atomic_pipe_write() -> None:
    long = Blocked(None, "unknown", "/home/child/" + "x" * 10_000, 1000)
    line = m.encode(m.BlockedReport(_short(long)))
    assert len(line) <= m.MAX_LINE
    decoded = m.decode_from_gate(line)
    assert isinstance(decoded, m.BlockedReport) and decoded.blocked.path.endswith("x" * 900)
