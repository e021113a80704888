"""Plain TCP accept-and-close and UDP echo listeners (the "internet" inside the namespace).

Usage: netservers.py HOST:PORT/tcp|udp ...; prints "ready" once every socket is bound.
"""

from __future__ import annotations

import selectors
import socket
import sys


def main() -> int:
    sel = selectors.DefaultSelector()
    for spec in sys.argv[1:]:
        addr, proto = spec.rsplit("/", 1)
        host, port = addr.rsplit(":", 1)
        host = host.strip("[]")
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        if proto == "tcp":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, int(port)))
            s.listen(16)
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.bind((host, int(port)))
        sel.register(s, selectors.EVENT_READ, proto)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "tcp":
                conn, _a = sock.accept()
                conn.close()
            else:
                data, peer = sock.recvfrom(64)
                sock.sendto(data, peer)


if __name__ == "__main__":
    sys.exit(main())
