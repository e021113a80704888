"""What the supervisor and the gate process say to each other: one JSON object a line.

Defined once here and used by both sides (`agent.execgate.supervisor`,
`agent.execgate.gate`), so neither can drift from the other:

    to the gate (its stdin)       {"table": <table JSON>}        SetTable
                                  {"ping": N}                    Ping
    from the gate (its stdout)    {"ready": GENERATION, "pid": P} Ready
                                  {"pong": N, "events": E}        Pong
                                  {"blocked": {app_id, reason, path, uid}}  BlockedReport

A line that is not JSON raises `MessageError`; a JSON object of a kind this version does
not know decodes to None (ignored by the receiver, as a newer peer's message would be).
Reports stay under PIPE_BUF (`MAX_LINE`), so the gate's non-blocking write of one is all
or nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from agent.execgate.loop import Blocked
from agent.execgate.table import GateTable, table_from_json, table_to_json

MAX_LINE = 4000  # < PIPE_BUF (4096 on Linux)


class MessageError(ValueError):
    """A line that is not a JSON object."""


@dataclass(frozen=True, slots=True)
class SetTable:
    """Judge by this table from now on (the first line the gate reads is always one)."""

    table: GateTable


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you answering? (A gate that does not pong within the timeout is killed.)"""

    seq: int


@dataclass(frozen=True, slots=True)
class Ready:
    """The gate reads its group now, with the table of this generation."""

    generation: int
    pid: int


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to `Ping(seq)`, with how many events the gate has judged."""

    seq: int
    events: int


@dataclass(frozen=True, slots=True)
class BlockedReport:
    """An exec the gate denied (the first of its kind since the table changed)."""

    blocked: Blocked


ToGate = SetTable | Ping
FromGate = Ready | Pong | BlockedReport
Message = ToGate | FromGate


def encode(message: Message) -> bytes:
    """The message as one line, newline included."""
    body: dict[str, Any]
    match message:
        case SetTable(table):
            body = {"table": table_to_json(table)}
        case Ping(seq):
            body = {"ping": seq}
        case Ready(generation, pid):
            body = {"ready": generation, "pid": pid}
        case Pong(seq, events):
            body = {"pong": seq, "events": events}
        case BlockedReport(blocked):
            body = {"blocked": asdict(blocked)}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise MessageError(f"not JSON: {line[:200]!r}") from exc
    if not isinstance(body, dict):
        raise MessageError(f"not a JSON object: {line[:200]!r}")
    return body


def decode_to_gate(line: bytes) -> ToGate | None:
    body = _object(line)
    if "table" in body:
        return SetTable(table_from_json(body["table"]))
    if "ping" in body:
        return Ping(int(body["ping"]))
    return None


def decode_from_gate(line: bytes) -> FromGate | None:
    body = _object(line)
    if "ready" in body:
        return Ready(int(body["ready"]), int(body.get("pid", 0)))
    if "pong" in body:
        return Pong(int(body["pong"]), int(body.get("events", 0)))
    if "blocked" in body:
        return BlockedReport(Blocked(**body["blocked"]))
    return None
