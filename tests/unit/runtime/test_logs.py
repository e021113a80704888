"""The daemon's log records in the journal's native protocol (agent/runtime/logs.py), read
from a datagram socket standing in for /run/systemd/journal/socket by a parser of the
protocol written here from journald's documentation (not the encoder's code)."""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime import logs
from agent.runtime.logs import JournalHandler


def parse(payload: bytes) -> dict[str, str]:
    """journald native format: NAME=value\\n, or NAME\\n <u64 LE length> value \\n."""
    out: dict[str, str] = {}
    i = 0
    while i < len(payload):
        end = payload.index(b"\n", i)
        line = payload[i:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = end + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", payload[end + 1:end + 9])
            value = payload[end + 9:end + 9 + size]
            assert payload[end + 9 + size:end + 10 + size] == b"\n"
            i = end + 10 + size
        assert name.decode() not in out, f"{name!r} twice"
        out[name.decode()] = value.decode()
    return out


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[socket.socket, logging.Logger]]:
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(tmp_path / "journal"))
    sink.settimeout(5)
    handler = JournalHandler(tmp_path / "journal")
    log = logging.getLogger(f"minormode.test.{tmp_path.name}")
    log.propagate, log.level = False, logging.DEBUG
    log.addHandler(handler)
    yield sink, log
    log.removeHandler(handler)
    handler.close()
    sink.close()


def entries(sink: socket.socket) -> list[dict[str, str]]:
    out = []
    sink.setblocking(False)
    try:
        while True:
            data, fds, _, _ = socket.recv_fds(sink, 1 << 20, 1)
            if fds:  # an oversized record comes in a memfd
                with os.fdopen(fds[0], "rb") as f:
                    data = os.pread(f.fileno(), 1 << 21, 0)  # journald reads from offset 0
            out.append(parse(data))
    except BlockingIOError:
        return out
    finally:
        sink.settimeout(5)


def test_one_entry_per_message_with_its_priority(journal: tuple[socket.socket, logging.Logger]) -> None:
    sink, log = journal
    log.error("policy rejected, keeping version %d:\n%s", 2, "p.toml:3: budget.mon: -60\np.toml:9: x")
    log.warning("clock went back")
    log.info("enforcing policy version %d", 3, extra={"POLICY_VERSION": 3})
    log.debug("tick")
    got = entries(sink)
    assert [e["PRIORITY"] for e in got] == ["3", "4", "6", "7"]
    assert got[0]["MESSAGE"] == "policy rejected, keeping version 2:\np.toml:3: budget.mon: -60\np.toml:9: x"
    assert got[2]["MESSAGE"] == "enforcing policy version 3"  # no timestamp: the journal adds it
    assert got[2]["POLICY_VERSION"] == "3" and "POLICY_VERSION" not in got[1]
    assert got[1]["SYSLOG_IDENTIFIER"] == "minormode-agent" and got[1]["LOGGER"] == log.name
    assert got[1]["CODE_FUNC"] == "test_one_entry_per_message_with_its_priority"


def test_an_exception_travels_as_a_field(journal: tuple[socket.socket, logging.Logger]) -> None:
    sink, log = journal
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("service failed")
    [entry] = entries(sink)
    assert entry["MESSAGE"] == "service failed" and entry["PRIORITY"] == "3"
    assert "RuntimeError: boom" in entry["EXCEPTION"]


def test_a_record_too_big_for_a_datagram_goes_in_a_memfd(journal: tuple[socket.socket, logging.Logger]) -> None:
    sink, log = journal
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    big = "x" * (1 << 19) + "\nend"
    log.warning(big)
    data, fds, _, _ = socket.recv_fds(sink, 1 << 20, 1)
    assert data == b"" and len(fds) == 1, "not passed as a memfd"
    with os.fdopen(fds[0], "rb") as f:
        assert parse(os.pread(f.fileno(), 1 << 21, 0))["MESSAGE"] == big


def test_without_the_socket_stderr_gets_a_priority_prefix(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    handler = JournalHandler(tmp_path / "nobody-listens")
    log = logging.getLogger("minormode.test.fallback")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error("journal gone")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert capsys.readouterr().err == "<3>journal gone\n"


def test_under_journal_only_when_stderr_is_the_stream_systemd_named(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as f, (tmp_path / "other").open("w") as g:
        st = os.fstat(f.fileno())
        stream = f"{st.st_dev}:{st.st_ino}"
        assert logs.under_journal({"JOURNAL_STREAM": stream}, f.fileno())
        assert not logs.under_journal({"JOURNAL_STREAM": stream}, g.fileno())  # stderr redirected
        assert not logs.under_journal({}, f.fileno())
        assert not logs.under_journal({"JOURNAL_STREAM": "nonsense"}, f.fileno())


def test_configure_picks_the_journal_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        st = os.fstat(2)
        logs.configure("INFO", environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert [type(h) for h in root.handlers] == [JournalHandler]
        logs.configure("INFO", environ={})
        assert [type(h) for h in root.handlers] == [logging.StreamHandler]
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:], root.level = saved[0], saved[1]


