"""The one thing the gate reads inside an ELF file: its program interpreter (PT_INTERP).

The kernel execs a dynamic program in two opens for exec in the same thread: the
program, then the dynamic loader its PT_INTERP names. The gate lets the child's loader
open pass only as that second step (README.md, "The dynamic loader"), so it reads the
program's PT_INTERP. Reads with pread (the fd's offset stays) and at most a few KiB.
"""

from __future__ import annotations

import os
import struct

PT_INTERP = 3
_MAX_PHNUM = 256  # real programs have about a dozen program headers
_MAX_INTERP = 4096


def interp_segment(fd: int) -> tuple[int, int] | None:
    """Where the PT_INTERP string sits in the ELF file open on `fd`: (offset, size), or
    None (static, not ELF, or malformed)."""
    ident = os.pread(fd, 64, 0)
    if len(ident) < 52 or ident[:4] != b"\x7fELF":
        return None
    is64 = ident[4] == 2
    order = "<" if ident[5] == 1 else ">"
    if is64:
        if len(ident) < 64:
            return None
        (phoff,) = struct.unpack_from(order + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
        header = struct.Struct(order + "IIQQQQ")  # type, flags, offset, vaddr, paddr, filesz
    else:
        (phoff,) = struct.unpack_from(order + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
        header = struct.Struct(order + "IIIII")  # type, offset, vaddr, paddr, filesz
    if phentsize < header.size or phnum > _MAX_PHNUM:
        return None
    table = os.pread(fd, phentsize * phnum, phoff)
    for i in range(len(table) // phentsize):
        fields = header.unpack_from(table, i * phentsize)
        if fields[0] == PT_INTERP:
            offset, size = (fields[2], fields[5]) if is64 else (fields[1], fields[4])
            return (offset, size) if 0 < size <= _MAX_INTERP else None
    return None


def program_interpreter(fd: int) -> str | None:
    """The PT_INTERP path of the ELF file open on `fd`, or None (static, not ELF, or bad)."""
    where = interp_segment(fd)
    if where is None:
        return None
    offset, size = where
    return os.pread(fd, size, offset).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
