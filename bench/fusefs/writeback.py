"""Where plain mode writes the kernel's page-cache writebacks (WRITE with FUSE_WRITE_CACHE).

The kernel writes dirty pages of a FUSE file (a shared mmap, or any write with writeback
caching) back through an fh of the inode that is open for writing, whichever, with the last
page cut at end of file. Natively such pages go back buffered whatever the opener asked for:
an fd opened O_DIRECT refuses the unaligned tail (EINVAL, and msync fails) and one opened
O_APPEND puts every page at end of file. So a writeback to such an fh goes to a buffered twin
without those flags, opened on the first one and closed with the fh. The client's own writes,
direct ones included, still go to the fh as opened.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

UNFIT = os.O_DIRECT | os.O_APPEND  # open flags a page-cache writeback must not go through
# Not taken over from the client's flags: UNFIT, its access mode (a twin writes), what applies
# only to opening by name (O_TRUNC would empty the file), and O_NOFOLLOW (the /proc/self/fd path is a link).
NOT_TWINNED = UNFIT | os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOCTTY | os.O_NOFOLLOW


def open_twin(fd: int, flags: int) -> int:
    """A buffered twin of `fd`, opened with `flags` (the client's): a new fd of its file for
    writing, with none of NOT_TWINNED (O_SYNC and O_DSYNC stay)."""
    return os.open(f"/proc/self/fd/{fd}", flags & ~NOT_TWINNED | os.O_WRONLY | os.O_CLOEXEC)


class WritebackFds:
    """The buffered twins of the open fhs that need one; `reopen(fh, flags)` opens a twin of an
    fh opened with `flags`."""

    def __init__(self, reopen: Callable[[int, int], int] = open_twin) -> None:
        self._reopen = reopen
        self._pending: dict[int, int] = {}  # fh -> its flags, until its first writeback
        self._twins: dict[int, int] = {}  # fh -> twin fd
        self._lock = threading.Lock()

    def opened(self, fh: int, flags: int) -> None:
        """Note an fh opened with `flags`."""
        if flags & UNFIT:
            with self._lock:
                self._pending[fh] = flags

    def fd(self, fh: int) -> int:
        """The fd a writeback to `fh` goes to: `fh`, or its twin (opened now if need be)."""
        if fh in self._pending:
            with self._lock:
                flags = self._pending.get(fh)  # None: a RELEASE came meanwhile, or another writeback opened it
                if flags is not None:
                    # The twin is in place before fh leaves `_pending`: a writeback that finds
                    # fh no longer pending finds its twin.
                    self._twins[fh] = self._reopen(fh, flags)
                    del self._pending[fh]
        return self._twins.get(fh, fh)

    def closing(self, fh: int) -> None:
        """Close the twin of `fh`, if any (before `fh` itself, whose number may then be reused)."""
        with self._lock:
            self._pending.pop(fh, None)
            twin = self._twins.pop(fh, None)
        if twin is not None:
            os.close(twin)
