"""fio's words that fusebench understands, defined once: the `rw` patterns (what each one
reads and writes, whether it is sequential, whether it mixes) and the ioengines a scenario
may name (which of them keep more than one I/O in flight)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    """One value of fio's `rw`."""

    name: str
    reads: bool
    writes: bool
    sequential: bool

    @property
    def mixed(self) -> bool:
        """Reads and writes both: `rwmixread` applies."""
        return self.reads and self.writes


PATTERNS: dict[str, Pattern] = {p.name: p for p in (
    Pattern("read", reads=True, writes=False, sequential=True),
    Pattern("write", reads=False, writes=True, sequential=True),
    Pattern("randread", reads=True, writes=False, sequential=False),
    Pattern("randwrite", reads=False, writes=True, sequential=False),
    Pattern("rw", reads=True, writes=True, sequential=True),
    Pattern("readwrite", reads=True, writes=True, sequential=True),
    Pattern("randrw", reads=True, writes=True, sequential=False),
)}
RW_NAMES = tuple(PATTERNS)
MIXED = tuple(name for name, pattern in PATTERNS.items() if pattern.mixed)

# The ioengines a scenario may use: none of them takes a file name, a command or a library
# path from its options (unlike e.g. `external` or `exec`), so nothing escapes the allow-list.
IOENGINES = ("sync", "psync", "vsync", "pvsync", "pvsync2", "libaio", "io_uring", "posixaio", "mmap")
ASYNC_IOENGINES = ("libaio", "io_uring", "posixaio")  # iodepth > 1 means something only for these
