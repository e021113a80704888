"""Ask a DNS server for NAME's A record over UDP; print the answer's RCODE (3 = NXDOMAIN),
or "timeout". Raw bytes, so the guest check depends on nothing but the standard library.
Usage: python dns_query.py SERVER PORT NAME"""

from __future__ import annotations

import random
import socket
import struct
import sys


def main() -> None:
    server, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ident = random.randrange(1 << 16)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(packet, (server, port))
        try:
            reply, _ = sock.recvfrom(4096)
        except TimeoutError:
            print("timeout")
            return
    got_id, flags = struct.unpack("!HH", reply[:4])
    print(flags & 0xF if got_id == ident else "bad-id")


if __name__ == "__main__":
    main()
