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
from typing import Callable

UNFIT = os.O_DIRECT | os.O_APPEND  # open flags a page-cache writeback must not go through
_NOT_YET = -1


class WritebackFds:
    """The buffered twins of the open fhs that need one; `reopen(fh)` opens a twin (a new
    fd of fh's file, for writing, with no UNFIT flag)."""

    def __init__(self, reopen: Callable[[int], int]) -> None:
        self._reopen = reopen
        self._twins: dict[int, int] = {}  # fh -> twin fd, or _NOT_YET
        self._lock = threading.Lock()

    def opened(self, fh: int, flags: int) -> None:
        """Note an fh opened with `flags`."""
        if flags & UNFIT:
            with self._lock:
                self._twins[fh] = _NOT_YET

    def fd(self, fh: int) -> int:
        """The fd a writeback to `fh` goes to: `fh`, or its twin (opened now if need be)."""
        twin = self._twins.get(fh)
        if twin is None:
            return fh
        if twin == _NOT_YET:
            with self._lock:
                twin = self._twins[fh]
                if twin == _NOT_YET:
                    twin = self._twins[fh] = self._reopen(fh)
        return twin

    def closing(self, fh: int) -> None:
        """Close the twin of `fh`, if any (before `fh` itself, whose number may then be reused)."""
        with self._lock:
            twin = self._twins.pop(fh, None)
        if twin is not None and twin != _NOT_YET:
            os.close(twin)
