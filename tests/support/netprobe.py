"""Network probes run inside the test namespace, optionally as another uid.

Usage: netprobe.py UID CHECKS_JSON; prints a JSON list of results.
netprobe.py UID --flow HOST PORT: one UDP flow (a call's media, say): an echo exchanged now
and again for every line read from stdin, each result printed on a line of its own.
Self-contained (stdlib only) and drops privileges only after everything is imported.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  (loaded before dropping privileges)
import errno
import json
import os
import socket
import struct
import sys


def query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (struct.pack("!HHHHHH", 0x2222, 0x0100, 1, 0, 0, 0) + labels + b"\x00"
            + struct.pack("!HH", qtype, 1))


def first_a(reply: bytes, qtype: int = 1) -> str:
    rcode = reply[3] & 0xF
    if rcode:
        return f"rcode{rcode}"
    if struct.unpack("!H", reply[6:8])[0] == 0:
        return "nodata"
    if qtype == 28:
        return socket.inet_ntop(socket.AF_INET6, reply[-16:])
    return socket.inet_ntoa(reply[-4:])  # our answers end with one address record


def err(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return errno.errorcode.get(exc.errno or 0, str(exc))


def run(check: list[object]) -> str:
    kind, host, port = str(check[0]), str(check[1]), int(str(check[2]))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if kind in ("dns", "dns6"):  # an A or an AAAA question
            qtype = 28 if kind == "dns6" else 1
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(query(str(check[3]), qtype), (host, port))
                return first_a(s.recv(4096), qtype)
        if kind == "dnstcp":
            with socket.create_connection((host, port), timeout=3) as s:
                msg = query(str(check[3]))
                s.sendall(len(msg).to_bytes(2, "big") + msg)
                n = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
                return first_a(s.recv(n, socket.MSG_WAITALL))
        if kind == "tcp":
            with socket.create_connection((host, port), timeout=2):
                return "ok"
        if kind == "udp":
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.connect((host, port))
                s.send(b"ping")
                return "ok" if s.recv(64) == b"ping" else "bad"
    except OSError as exc:
        return err(exc)
    return "unknown-check"


def echo(s: socket.socket) -> str:
    try:
        s.send(b"ping")
        return "ok" if s.recv(64) == b"ping" else "bad"
    except OSError as exc:
        return err(exc)


def flow(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect((host, port))
        print(echo(s), flush=True)
        for _line in sys.stdin:
            print(echo(s), flush=True)


def main() -> int:
    uid = int(sys.argv[1])
    if uid:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if sys.argv[2] == "--flow":
        flow(sys.argv[3], int(sys.argv[4]))
        return 0
    checks = json.loads(sys.argv[2])
    print(json.dumps([run(c) for c in checks]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
