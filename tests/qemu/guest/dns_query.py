"""Ask a DNS server for NAME's A record over UDP; print the answer's RCODE (3 = NXDOMAIN,
2 = SERVFAIL), its first address when it has one ("0 198.51.100.53"), or "timeout". Raw
bytes, so the guest check depends on nothing but the standard library.
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
    got_id, flags, _qd, answers = struct.unpack("!HHHH", reply[:8])
    if got_id != ident:
        print("bad-id")
    elif flags & 0xF == 0 and answers and len(reply) >= 4:
        print(f"0 {socket.inet_ntoa(reply[-4:])}")  # the fake resolver's one A record, last
    else:
        print(flags & 0xF)


if __name__ == "__main__":
    main()
