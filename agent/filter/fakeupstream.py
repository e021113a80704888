"""A tiny fake upstream resolver for tests, benchmarks and the QEMU run.

Answers every A query with one address (per-name overrides possible), AAAA with one IPv6
address, anything else with an empty NOERROR; a name given a CNAME is answered with the
chain (CNAME records, then the last name's address), as a CDN's resolver would; over UDP
and TCP. Never for production.
Run: `python -m agent.filter.fakeupstream --listen 127.0.0.1:5399 [--map name=ip ...]
[--cname name=target ...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import select
import socket
import struct
import sys
import threading
from collections.abc import Mapping, Sequence

from agent.filter import dnswire as dw
from agent.filter.server import bind_pair


class FakeUpstream:
    """Serves until `stop()`; `queries` counts what it answered (names as wire bytes)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        port: int = 0,
        address4: str = "10.20.30.40",
        address6: str = "fd00::40",
        overrides: Mapping[str, str] | None = None,
        cnames: Mapping[str, str] | None = None,
        ttl: int = 300,
        record: bool = True,
    ) -> None:
        self.udp, self.tcp = bind_pair(host, port)  # port 0: the same free port for both
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.udp.getsockname()[1]
        self.tcp.listen(16)
        self.addr = (host, self.port)
        self.a = ipaddress.IPv4Address(address4).packed
        self.aaaa = ipaddress.IPv6Address(address6).packed
        self.overrides = {
            dw.encode_name(k): ipaddress.ip_address(v).packed for k, v in (overrides or {}).items()
        }
        self.cnames = {dw.encode_name(k): dw.encode_name(v) for k, v in (cnames or {}).items()}
        self.ttl = ttl
        self.record = record
        self.queries: list[bytes] = []
        self.count = 0
        self._running = True
        self._thread: threading.Thread | None = None

    def answer(self, data: bytes) -> bytes | None:
        try:
            q = dw.parse_query(data)
        except dw.WireError as exc:
            return dw.error_response(data, exc.rcode) if exc.rcode is not None else None
        if self.record:
            self.queries.append(q.qname)
        self.count += 1
        if q.qname in self.cnames and q.qtype in (dw.TYPE_A, dw.TYPE_AAAA):
            return self._chain_answer(data, q)
        if q.qtype in (dw.TYPE_A, dw.TYPE_AAAA):
            return dw.address_answer(data, q, (self._address(q.qname, q.qtype),), self.ttl)
        return dw.address_answer(data, q, (), self.ttl)

    def _address(self, name: bytes, qtype: int) -> bytes:
        if qtype == dw.TYPE_A:
            return self.overrides.get(name, self.a)  # an IPv6 override: NODATA for A
        over = self.overrides.get(name)
        return over if over is not None and len(over) == 16 else self.aaaa

    def _chain_answer(self, data: bytes, q: dw.Question) -> bytes:
        chain = [q.qname]
        while chain[-1] in self.cnames and len(chain) < 9:  # a loop ends after 8 hops
            chain.append(self.cnames[chain[-1]])
        records = [dw.Record(chain[i], dw.TYPE_CNAME, dw.CLASS_IN, self.ttl, chain[i + 1])
                   for i in range(1, len(chain) - 1)]
        records.append(dw.Record(chain[-1], q.qtype, dw.CLASS_IN, self.ttl,
                                 self._address(chain[-1], q.qtype)))
        return dw.cname_answer(data, q, chain[1], dw.NOERROR, records)

    def serve(self) -> None:
        self.udp.setblocking(False)
        self.tcp.setblocking(False)
        poller = select.epoll()
        poller.register(self.udp.fileno(), select.EPOLLIN)
        poller.register(self.tcp.fileno(), select.EPOLLIN)
        recvfrom = self.udp.recvfrom
        sendto = self.udp.sendto
        while self._running:
            for fd, _ in poller.poll(0.1):
                if fd == self.tcp.fileno():
                    with contextlib.suppress(BlockingIOError):
                        conn, _a = self.tcp.accept()
                        threading.Thread(target=self._tcp, args=(conn,), daemon=True).start()
                    continue
                for _ in range(512):
                    try:
                        data, addr = recvfrom(4096)
                    except BlockingIOError:
                        break
                    reply = self.answer(data)
                    if reply is not None:
                        with contextlib.suppress(OSError):
                            sendto(reply, addr)
        poller.close()

    def _tcp(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    head = conn.recv(2, socket.MSG_WAITALL)
                    if len(head) < 2:
                        return
                    data = conn.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                    reply = self.answer(data)
                    if reply is None:
                        return
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                return

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self.serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(5)
        self.udp.close()
        self.tcp.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.filter.fakeupstream")
    parser.add_argument("--listen", default="127.0.0.1:5399", help="IP:PORT")
    parser.add_argument("--map", action="append", default=[], help="name=ip override")
    parser.add_argument("--cname", action="append", default=[], help="name=target: a CNAME")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    overrides = dict(m.split("=", 1) for m in args.map)
    cnames = dict(m.split("=", 1) for m in args.cname)
    up = FakeUpstream(host.strip("[]"), port=int(port), overrides=overrides, cnames=cnames,
                      record=False)
    print(f"fake upstream on {host}:{up.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        up.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
