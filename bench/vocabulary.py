"""fio's words that fusebench understands, defined once: the `rw` patterns (what each one
reads and writes, whether it is sequential, whether it mixes), the ioengines a scenario may
name (which of them keep more than one I/O in flight, which work on metadata), and the
values of the fio options a scenario may set."""

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

# fio's metadata engines (fio 3.33): each "I/O" is one create, stat or unlink of a file, with
# the `rw` direction fio counts it in. create and delete change the tree (the runner restores it).
METADATA_ENGINES = {"filecreate": "write", "filestat": "read", "filedelete": "write"}
TREE_CHANGING_ENGINES = ("filecreate", "filedelete")
STAT_TYPES = ("stat", "lstat", "statx")
FILE_SERVICE_TYPES = ("roundrobin", "sequential", "random")

# The ioengines a scenario may use: none of them takes a file name, a command or a library
# path from its options (unlike e.g. `external` or `exec`), so nothing escapes the allow-list.
IOENGINES = ("sync", "psync", "vsync", "pvsync", "pvsync2", "libaio", "io_uring", "posixaio", "mmap",
             *METADATA_ENGINES)
ASYNC_IOENGINES = ("libaio", "io_uring", "posixaio")  # iodepth > 1 means something only for these

# The workload families: fio (block I/O, small files, mmap, metadata engines), open/close
# loops and catalog programs. Each cell model names its family; the runner and the results
# folder go by these names.
FIO, OPENS, PROGRAM = "fio", "opens", "program"
FAMILIES = (FIO, OPENS, PROGRAM)
