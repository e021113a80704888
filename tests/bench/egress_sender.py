"""The child's side of the egress benchmark, run inside the namespace as the child's uid.

Usage: egress_sender.py UID HOST COUNT answered|unanswered|flows; prints the CPU seconds
(user + system) this process spent sending COUNT UDP datagrams to HOST:
  answered: one flow whose first datagram was answered (conntrack ESTABLISHED: the table's
            mark check passes it);
  unanswered: one flow never answered (each datagram is still NEW: faces the set lookups);
  flows: each datagram from a socket of its own (a new flow each: lookups and a mark set).
The receiving socket is this process's own, never read after the first datagram (its
queue fills and the kernel drops the rest), so only the send path is timed. Stdlib only.
"""

from __future__ import annotations

import os
import socket
import sys
import time


def main() -> int:
    uid, host, count, kind = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.bind((host, 0))
    dest = rx.getsockname()
    if kind == "flows":
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
        start = time.process_time()
        for s in socks:
            s.sendto(b"x", dest)
        spent = time.process_time() - start
        for s in socks:
            s.close()
        print(f"{spent:.6f}")
        return 0
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(dest)
    if kind == "answered":
        tx.send(b"hello")
        _data, peer = rx.recvfrom(64)
        rx.sendto(b"welcome", peer)
        tx.settimeout(5)
        tx.recv(64)
    send = tx.send
    payload = b"x" * 64
    start = time.process_time()
    for _ in range(count):
        try:  # noqa: SIM105 - a full receiver may report ECONNREFUSED-free drops only
            send(payload)
        except OSError:
            pass
    print(f"{time.process_time() - start:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
