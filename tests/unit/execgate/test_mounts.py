"""The mount table as the gate reads it (agent.execgate.mounts): proc(5)'s layout, the
kernel's octal escapes, and which mounts get a mark."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.execgate.mounts import Mount, MountInfoError, parse_mountinfo, to_mark

# Lines as bookworm's kernel writes them (optional fields of any count, then " - ").
SAMPLE = """\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /run rw,nosuid,nodev shared:2 - tmpfs tmpfs rw,size=190000k,mode=755
25 22 0:5 / /dev rw,nosuid shared:3 - devtmpfs udev rw,size=4k
31 24 0:25 / /run/user/1000 rw,nosuid,nodev,relatime shared:200 - tmpfs tmpfs rw,mode=700,uid=1000
40 22 8:1 / /media/child/MY\\040STICK rw,nosuid,nodev master:7 propagate_from:1 - vfat /dev/sda1 rw
41 22 0:30 / /proc/sys/fs/binfmt_misc rw,relatime shared:30 - autofs systemd-1 rw,fd=30
42 40 0:44 / /media/child/MY\\040STICK/fuse rw,nosuid,nodev - fuse.sshfs me@host:/ rw,user_id=1000
"""


def test_fields_and_escapes_are_read_as_the_kernel_writes_them() -> None:
    mounts = parse_mountinfo(SAMPLE)
    assert [m.mount_id for m in mounts] == [22, 23, 24, 25, 31, 40, 41, 42]
    stick = mounts[5]
    assert stick == Mount(40, "/media/child/MY STICK", "vfat", "/dev/sda1")
    assert mounts[7].fs_type == "fuse.sshfs" and mounts[7].mount_point == "/media/child/MY STICK/fuse"


def test_under_slash_every_mount_that_can_hold_programs_is_marked() -> None:
    marked = {m.mount_point for m in to_mark(parse_mountinfo(SAMPLE), ["/"])}
    # /run (Debian's /run/lock is writable by everyone), logind's runtime dir, /dev, a stick
    # and a FUSE mount are; /proc and the autofs trigger (whose mark would mount it) are not
    assert marked == {"/", "/run", "/dev", "/run/user/1000", "/media/child/MY STICK",
                      "/media/child/MY STICK/fuse"}


def test_known_mounts_are_not_marked_twice_and_roots_bound_the_scope() -> None:
    mounts = parse_mountinfo(SAMPLE)
    assert [m.mount_id for m in to_mark(mounts, ["/"], known=[22, 24, 25, 31, 40])] == [42]
    assert {m.mount_point for m in to_mark(mounts, ["/run"])} == {"/run", "/run/user/1000"}
    # a prefix that is not a path component is not "under"
    assert to_mark(mounts, ["/run/us"]) == ()
    assert {m.mount_point for m in to_mark(mounts, ["/media/child/"])} == {
        "/media/child/MY STICK", "/media/child/MY STICK/fuse"}


@pytest.mark.parametrize("line, what", [
    ("22 1 179:2 / / rw shared:1 ext4 /dev/root rw", "no ' - '"),
    ("22 1 179:2 / / - ext4 /dev/root rw", "fewer than six fields"),
    ("x 1 179:2 / / rw - ext4 /dev/root rw", "an id that is not a number"),
    ("22 1 179:2 / / rw - ext4", "no source"),
])
def test_a_line_not_in_the_kernels_layout_is_refused_naming_its_line(line: str, what: str) -> None:
    with pytest.raises(MountInfoError, match=r"mountinfo line 2: "):
        parse_mountinfo(SAMPLE.splitlines()[0] + "\n" + line + "\n")


@given(st.text(alphabet=st.sampled_from("0123456789 -/\\\n\r\x85\u2028²x:"), max_size=300) | st.text(max_size=300))
def test_any_text_either_parses_or_is_refused_with_mountinfoerror(text: str) -> None:
    try:
        mounts = parse_mountinfo(text)
    except MountInfoError as exc:
        assert str(exc).startswith("mountinfo line ")
    else:
        assert all(isinstance(m.mount_id, int) for m in mounts)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_a_mount_point_escaped_as_the_kernel_does_reads_back(name: str) -> None:
    escaped = "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in "/" + name)
    mounts = parse_mountinfo(f"7 1 0:9 / {escaped} rw - tmpfs tmpfs rw\n")
    assert mounts[0].mount_point == "/" + name
