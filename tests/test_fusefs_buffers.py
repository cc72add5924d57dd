"""bench.fusefs.buffers: the daemon's data buffers are private, page-aligned and huge-page backed."""

from __future__ import annotations

import ctypes
import mmap
import re
from pathlib import Path

from bench.fusefs.buffers import address, io_buffer

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _mapping(addr: int) -> dict[str, str]:
    """The /proc/self/smaps fields of the mapping that starts at `addr`."""
    fields: dict[str, str] = {}
    current = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        if head:
            current = int(head.group(1), 16) == addr
            if current:
                fields["perms"] = head.group(3)
        elif current and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def test_io_buffer_is_private_aligned_and_on_huge_pages() -> None:
    size = 4 << 20
    buf = io_buffer(size)
    try:
        addr = address(buf)
        assert addr % mmap.PAGESIZE == 0
        buf[: 2 << 20] = b"x" * (2 << 20)  # touch: the kernel allocates on first write
        smaps = _mapping(addr)
        assert smaps["perms"] == "rw-p"  # private: shared anonymous memory (shmem) gets no THP here
        if "[never]" not in THP_MODE.read_text():
            assert smaps["THPeligible"] == "1"
            assert "hg" in smaps["VmFlags"].split()  # madvise(MADV_HUGEPAGE) took
    finally:
        buf.close()


def test_address_points_at_the_buffer() -> None:
    buf = bytearray(b"fusebench")
    assert ctypes.string_at(address(buf), len(buf)) == b"fusebench"
