"""The network's DNS resolvers, for the filter to forward to, followed as the network changes.

On the image, systemd-networkd takes the resolvers from DHCP (and router advertisements)
and hands them to systemd-resolved, which writes every server it uses, in resolv.conf
format, to /run/systemd/resolve/resolv.conf (rewritten, by rename, on every change; its
stub file, /etc/resolv.conf, names only 127.0.0.53). `ResolverFile` reads such a file;
`follow` re-reads it when its identity (inode, size, mtime) changes, so a new network's
resolvers reach the filter without restarting the agent.

The filter must never forward to itself: a resolv.conf naming the filter's own address
(e.g. `nameserver 127.0.0.1` while the filter listens on 127.0.0.1:53, or `0.0.0.0`,
which means "this host") would send every forwarded query round the loop until it timed
out. `without_self` drops those (and says so); the daemon's settings check refuses a fixed
`--dns-upstream` that is the filter's own address the same way.

Pure parts: `parse_nameservers`, `is_self`, `without_self`. `follow` is told of a change by
inotify on the file's directory (resolved replaces the file by rename) and otherwise sleeps,
with one look every SAFETY_INTERVAL in case a change was missed; while the directory does
not exist yet (resolved not started) or inotify fails, it stat()s the file every
FOLLOW_INTERVAL. An idle agent thus wakes for this once a minute, not every 5 s (issue 17:
an idle device's agent at most one wake-up a second in all).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.store.filewatch import WriteWatch

Address = tuple[str, int]
DNS_PORT = 53
MAX_RESOLVERS = 8  # one UDP socket each in the filter; resolved itself warns beyond 3
RESOLVED_FILE = Path("/run/systemd/resolve/resolv.conf")
FOLLOW_INTERVAL = 5.0  # seconds between stat()s of the file while it cannot be watched
SAFETY_INTERVAL = 60.0  # seconds between looks while inotify watches it

log = logging.getLogger("minormode.filter.resolvers")
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_nameservers(text: str, where: str = "resolv.conf") -> tuple[tuple[Address, ...], list[str]]:
    """The `nameserver` lines of a resolv.conf, in order, without duplicates, at most
    MAX_RESOLVERS, each on port 53 (the format has no port); with one problem per line that
    is not a valid address, naming `where` and the line number. Other keywords (search,
    options) and comments (# or ;) are ignored."""
    found: list[Address] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0] != "nameserver":
            continue
        if len(words) < 2 or words[1][0] in "#;":
            problems.append(f"{where}:{number}: nameserver without an address")
            continue
        try:
            ip = ipaddress.ip_address(words[1])
        except ValueError:
            problems.append(f"{where}:{number}: {words[1]!r} is not an IP address")
            continue
        entry = (str(ip), DNS_PORT)
        if entry in found:
            continue
        if len(found) == MAX_RESOLVERS:
            problems.append(f"{where}:{number}: more than {MAX_RESOLVERS} resolvers; {ip} and "
                            "later ones are not used")
            break
        found.append(entry)
    return tuple(found), problems


def _ip(text: str) -> IP:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _this_host(ip: IP) -> bool:
    """Loopback, or the unspecified address (a destination of 0.0.0.0 or :: is this host)."""
    return ip.is_loopback or ip.is_unspecified


def is_local_address(ip: str) -> bool:
    """Whether `ip` is one of this machine's own addresses (binding to it works)."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


def is_self(upstream: Address, listen: Iterable[Address],
            is_local: Callable[[str], bool] = is_local_address) -> bool:
    """Whether forwarding to `upstream` would reach the filter itself (listening on
    `listen`): the same port, and the same address, or a this-host address when either side
    is a this-host one (0.0.0.0 / :: reach every local address), or any local address when
    the filter listens on the unspecified address."""
    host, port = upstream
    up = _ip(host)
    for listen_host, listen_port in listen:
        if listen_port != port:
            continue
        here = _ip(listen_host)
        if up == here:
            return True
        if here.is_unspecified and (_this_host(up) or is_local(str(up))):
            return True
        if up.is_unspecified and _this_host(here):
            return True
    return False


def without_self(
    upstreams: Iterable[Address], listen: tuple[Address, ...],
    is_local: Callable[[str], bool] = is_local_address,
) -> tuple[tuple[Address, ...], list[Address]]:
    """(the upstreams to use, the ones dropped because they are the filter itself)."""
    kept: list[Address] = []
    dropped: list[Address] = []
    for upstream in upstreams:
        (dropped if is_self(upstream, listen, is_local) else kept).append(upstream)
    return tuple(kept), dropped


class ResolverFile:
    """The resolvers a resolv.conf-format file names, minus the filter itself.

    A file that is missing or cannot be read keeps the last resolvers known (at start: none,
    so forwarded queries get SERVFAIL until the network is up; blocked names are answered
    all the same), and is logged once per state, not on every look."""

    def __init__(self, path: Path, listen: tuple[Address, ...],
                 is_local: Callable[[str], bool] = is_local_address) -> None:
        self.path = path
        self.listen = listen
        self.is_local = is_local
        self.resolvers: tuple[Address, ...] = ()
        self._identity: tuple[int, int, int, int] | None = None
        self._complaint: str | None = None

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def read(self) -> tuple[Address, ...]:
        """Read the file now (whatever its identity) and return the resolvers in force."""
        self._identity = self._stat()
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self._complain(f"{self.path}: {exc.strerror or exc}; the DNS filter keeps "
                           f"forwarding to {_shown(self.resolvers)}")
            return self.resolvers
        self._complaint = None
        found, problems = parse_nameservers(text, str(self.path))
        for problem in problems:
            log.warning("%s", problem)
        kept, dropped = without_self(found, self.listen, self.is_local)
        for host, port in dropped:
            log.warning("%s names %s:%d, the DNS filter's own address: never forwarded to "
                        "(a loop)", self.path, host, port)
        if kept != self.resolvers:
            log.info("DNS filter upstreams from %s: %s", self.path, _shown(kept))
        self.resolvers = kept
        return kept

    def changed(self) -> tuple[Address, ...] | None:
        """The resolvers if the file changed since the last read and names others; else None."""
        if self._stat() == self._identity:
            return None
        before = self.resolvers
        after = self.read()
        return after if after != before else None

    async def follow(self, apply: Callable[[tuple[Address, ...]], None],
                     interval: float = FOLLOW_INTERVAL, safety: float = SAFETY_INTERVAL) -> None:
        """Call `apply(resolvers)` whenever they change, until cancelled."""
        written = asyncio.Event()
        watch: WriteWatch | None = None
        try:
            while True:
                if watch is None and self.path.parent.is_dir():
                    watch = WriteWatch(self.path, written.set)
                    try:
                        watch.start()
                        written.set()  # a change just before the watch began: look once now
                    except OSError as exc:
                        self._complain(f"{exc}: looking at {self.path} every {interval:g} s instead")
                        watch = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(written.wait(), safety if watch is not None else interval)
                written.clear()
                resolvers = self.changed()
                if resolvers is not None:
                    apply(resolvers)
        finally:
            if watch is not None:
                watch.close()

    def _complain(self, message: str) -> None:
        if message != self._complaint:
            log.warning("%s", message)
            self._complaint = message


def _shown(resolvers: tuple[Address, ...]) -> str:
    return ", ".join(f"{h}:{p}" for h, p in resolvers) or "no resolver yet (forwarded names get SERVFAIL)"
