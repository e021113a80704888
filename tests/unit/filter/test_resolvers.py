"""The network's resolvers from a resolv.conf-format file (systemd-resolved's on the image):
parsing, never the filter itself, following the file as it changes (files in a tmp dir)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.filter.resolvers import (
    MAX_RESOLVERS,
    ResolverFile,
    is_local_address,
    is_self,
    parse_nameservers,
    without_self,
)

# What systemd-resolved 252 writes to /run/systemd/resolve/resolv.conf (DHCP via networkd).
RESOLVED = """\
# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).
# Do not edit.
#
# This file might be symlinked as /etc/resolv.conf. If you're looking at
# /etc/resolv.conf and seeing this text, you have followed the symlink.
#
# This is a dynamic resolv.conf file for connecting local clients directly to
# all known uplink DNS servers. This file lists all configured search domains.
#
# Third party programs should typically not access this file directly, but only
# through the symlink at /etc/resolv.conf. To manage man:resolv.conf(5) in a
# different way, replace this symlink by a static file or a different symlink.
#
# See man:systemd-resolved.service(8) for details about the supported modes of
# operation for /etc/resolv.conf.

nameserver 192.168.1.1
nameserver 2001:db8::53
search lan
"""
LISTEN = (("127.0.0.1", 53),)
LOCAL = {"127.0.0.1", "::1", "10.0.2.15"}  # this host's addresses, for the stand-in is_local


def local(ip: str) -> bool:
    return ip in LOCAL


def test_resolved_file_names_the_dhcp_resolvers() -> None:
    found, problems = parse_nameservers(RESOLVED)
    assert found == (("192.168.1.1", 53), ("2001:db8::53", 53))
    assert problems == []


def test_bad_lines_are_named_by_file_and_line_and_skipped() -> None:
    text = "nameserver 10.0.0.1\nnameserver\nnameserver not-an-ip\nnameserver 10.0.0.1\n" \
           "nameserver ::ffff:10.0.0.2\n; nameserver 10.9.9.9\noptions edns0 trust-ad\n"
    found, problems = parse_nameservers(text, "/run/x/resolv.conf")
    assert found == (("10.0.0.1", 53), ("::ffff:a00:2", 53))
    assert problems == ["/run/x/resolv.conf:2: nameserver without an address",
                        "/run/x/resolv.conf:3: 'not-an-ip' is not an IP address"]


def test_at_most_max_resolvers() -> None:
    text = "".join(f"nameserver 10.0.0.{i}\n" for i in range(1, MAX_RESOLVERS + 3))
    found, problems = parse_nameservers(text, "f")
    assert len(found) == MAX_RESOLVERS and found[-1] == (f"10.0.0.{MAX_RESOLVERS}", 53)
    assert len(problems) == 1 and f"more than {MAX_RESOLVERS}" in problems[0]


@pytest.mark.parametrize(("upstream", "listen", "loop"), [
    (("127.0.0.1", 53), LISTEN, True),  # resolv.conf naming the filter itself
    (("0.0.0.0", 53), LISTEN, True),  # "this host"
    (("::ffff:127.0.0.1", 53), LISTEN, True),  # the same, IPv4-mapped
    (("127.0.0.53", 53), LISTEN, False),  # resolved's stub is not the filter
    (("127.0.0.1", 5353), LISTEN, False),  # another port
    (("192.168.1.1", 53), LISTEN, False),
    (("::1", 53), (("::1", 53),), True),
    (("::", 53), (("::1", 53),), True),
    (("127.0.0.9", 53), (("0.0.0.0", 53),), True),  # a filter on every address
    (("10.0.2.15", 53), (("0.0.0.0", 53),), True),  # ... includes the device's own address
    (("10.0.2.3", 53), (("0.0.0.0", 53),), False),  # ... not the network's resolver
    (("::1", 53), (("0.0.0.0", 53),), True),  # conservative: this host on the port, either family
])
def test_is_self(upstream: tuple[str, int], listen: tuple[tuple[str, int], ...], loop: bool) -> None:
    assert is_self(upstream, listen, local) is loop


def test_without_self_keeps_the_order_of_the_rest() -> None:
    kept, dropped = without_self([("10.0.0.1", 53), ("127.0.0.1", 53), ("10.0.0.2", 53)], LISTEN, local)
    assert kept == (("10.0.0.1", 53), ("10.0.0.2", 53)) and dropped == [("127.0.0.1", 53)]


def test_is_local_address_asks_the_kernel() -> None:
    assert is_local_address("127.0.0.1")
    assert not is_local_address("192.0.2.254")  # TEST-NET-1: nobody's address


def replace(path: Path, text: str) -> None:
    """As resolved writes it: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_follows_the_file_as_the_network_changes(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    watch = ResolverFile(path, LISTEN, local)
    assert watch.read() == ()  # resolved has not written it yet: no resolver
    assert watch.changed() is None
    replace(path, RESOLVED)
    assert watch.changed() == (("192.168.1.1", 53), ("2001:db8::53", 53))
    assert watch.changed() is None  # nothing new
    replace(path, RESOLVED)  # rewritten, same servers: no change to apply
    assert watch.changed() is None
    replace(path, "nameserver 10.1.1.1\n")  # another network
    assert watch.changed() == (("10.1.1.1", 53),)
    assert watch.resolvers == (("10.1.1.1", 53),)


def test_a_file_naming_the_filter_never_makes_a_loop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 127.0.0.1\nnameserver 0.0.0.0\nnameserver 10.0.2.3\n")
    with caplog.at_level(logging.WARNING, "minormode.filter.resolvers"):
        assert ResolverFile(path, LISTEN, local).read() == (("10.0.2.3", 53),)
    assert sum("own address" in r.message for r in caplog.records) == 2
    path.write_text("nameserver 127.0.0.1\n")
    assert ResolverFile(path, LISTEN, local).read() == ()


def test_a_vanished_or_unreadable_file_keeps_the_last_resolvers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.1.1.1\n")
    watch = ResolverFile(path, LISTEN, local)
    assert watch.read() == (("10.1.1.1", 53),)
    path.unlink()
    with caplog.at_level(logging.WARNING, "minormode.filter.resolvers"):
        assert watch.changed() is None
        assert watch.read() == (("10.1.1.1", 53),)
    assert len(caplog.records) == 1 and "keeps forwarding to 10.1.1.1:53" in caplog.records[0].message
    path.mkdir()  # not a file
    assert watch.changed() is None and watch.resolvers == (("10.1.1.1", 53),)


Seen = list[tuple[tuple[str, int], ...]]


def follow_until_seen(watch: ResolverFile, change: Callable[[], object], *, at_once: bool = False,
                      **timing: float) -> Seen:
    """Run `watch.follow`, make `change` (once the follower waits, or `at_once`: before it
    ran at all), wait (bounded) for a callback, stop it; every callback's resolvers."""
    seen: Seen = []

    async def scenario() -> None:
        task = asyncio.ensure_future(watch.follow(seen.append, **timing))
        if not at_once:
            await asyncio.sleep(0)  # the follower runs up to its first wait
        change()
        for _ in range(500):  # bounded wait for the follower to see it
            if seen:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    return seen


def test_follow_is_woken_by_the_change_not_by_a_timer(tmp_path: Path) -> None:
    """With inotify on the directory, a replaced file is seen at once although neither the
    safety look nor the fallback interval (an hour each here) comes in the test's time; a
    write to another file there wakes it, finds nothing new and calls nothing."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.1.1.1\n")
    watch = ResolverFile(path, LISTEN, local)
    watch.read()

    def change() -> None:
        (tmp_path / "other").write_text("x")
        replace(path, "nameserver 10.2.2.2\n")

    assert follow_until_seen(watch, change, interval=3600, safety=3600) == [(("10.2.2.2", 53),)]


def test_follow_waits_for_the_directory_then_watches_it(tmp_path: Path) -> None:
    """resolved's directory may appear after the agent starts: until then the file is looked
    at every `interval`; once there, the change is followed."""
    path = tmp_path / "resolve" / "resolv.conf"
    watch = ResolverFile(path, LISTEN, local)
    watch.read()

    def change() -> None:
        path.parent.mkdir()
        replace(path, "nameserver 10.3.3.3\n")

    assert follow_until_seen(watch, change, interval=0.01, safety=3600) == [(("10.3.3.3", 53),)]


def test_follow_sees_a_change_made_before_its_watch_began(tmp_path: Path) -> None:
    """The file replaced between the last read and the watch's start is not missed until the
    safety look (an hour here): the follower looks once as soon as it watches."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.1.1.1\n")
    watch = ResolverFile(path, LISTEN, local)
    watch.read()
    seen = follow_until_seen(watch, lambda: replace(path, "nameserver 10.2.2.2\n"), at_once=True,
                             interval=3600, safety=3600)
    assert seen == [(("10.2.2.2", 53),)]
