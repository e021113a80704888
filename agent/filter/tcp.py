"""DNS over TCP for the filter's clients: a thread per connection, length-prefixed frames.

TCP is rare on the device (truncated answers, some stubs), so it is served by plain
blocking threads beside the UDP loop, at most `connections` at once (a connection over
the bound is closed at once), each idle for at most 10 s. What a query is answered is
the filter's business (`answer`), shared with UDP through `agent.filter.reply`.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

IDLE_SECONDS = 10


class TcpService:
    def __init__(
        self, answer: Callable[[bytes], bytes | None], connections: int, serving: Callable[[], bool]
    ) -> None:
        """`answer(query)` is the reply to send (None: send nothing); `serving()` turns
        False when the filter stops (connections then end after their current query)."""
        self._answer = answer
        self._serving = serving
        self._slots = threading.BoundedSemaphore(connections)

    def on_accept(self, listener: socket.socket) -> None:
        """The listening socket is readable: take every waiting connection."""
        while True:
            try:
                conn, _addr = listener.accept()
            except BlockingIOError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(IDLE_SECONDS)
            while self._serving():
                data = read_frame(conn)
                if data is None:
                    return
                reply = self._answer(data)
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return
        finally:
            conn.close()
            self._slots.release()


def _read_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(conn: socket.socket) -> bytes | None:
    """One length-prefixed DNS message from a stream (RFC 1035 4.2.2); None at EOF."""
    head = _read_exact(conn, 2)
    if head is None:
        return None
    return _read_exact(conn, struct.unpack("!H", head)[0])
