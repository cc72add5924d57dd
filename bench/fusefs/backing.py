"""Passthrough backing ids: one per inode, shared by its concurrent opens, with an fd policy.

keep:  the daemon keeps its registered fd until the inode's last release, then BACKING_CLOSE.
close: the daemon closes its fd right after registering (the kernel holds the only reference);
       BACKING_CLOSE at the last release.
cache: like close, but the id outlives the last release in an LRU of `cache_size` and is reused
       on reopen; BACKING_CLOSE on eviction or when the kernel forgets the inode.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Callable, Protocol

from bench.fusefs import device
from bench.fusefs.options import FD_POLICIES

# The stats file's backing counters (all zero in plain mode).
STATS = ("backing_ids", "backing_ids_peak", "backing_opens_total", "backing_closes_total", "backing_open_ns_total",
         "backing_close_ns_total")
# The client's open flags that matter for I/O on the registered file.
IO_FLAGS = os.O_ACCMODE | os.O_DIRECT | os.O_SYNC | os.O_DSYNC | os.O_NOATIME


class BackedNode(Protocol):
    """What the registry needs of an inode."""

    opens: int
    backing_id: int
    backing_fd: int


class BackingRegistry:
    """Backing ids of open inodes and the counters the stats file reports."""

    def __init__(self, dev_fd: int, policy: str, cache_size: int) -> None:
        if policy not in FD_POLICIES:
            raise ValueError(f"unknown fd policy {policy!r}")
        self._dev_fd = dev_fd
        self._policy = policy
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._idle: OrderedDict[BackedNode, None] = OrderedDict()
        self.ids_now = 0
        self.ids_peak = 0
        self.opens_total = 0
        self.closes_total = 0
        # Time spent in the two ioctls (what passthrough adds to an open and a last release).
        self.open_ns_total = 0
        self.close_ns_total = 0

    def acquire(self, node: BackedNode, open_fd: Callable[[], int], fd: int = -1) -> int:
        """Count one open of `node` and return its backing id, registering one if needed.

        `fd` is an fd the caller already opened (CREATE) and hands over; otherwise `open_fd()`
        opens one when a registration is needed.
        """
        with self._lock:
            if node.backing_id:
                self._idle.pop(node, None)
                node.opens += 1
                if fd >= 0:
                    os.close(fd)
                return node.backing_id
            if fd < 0:
                fd = open_fd()
            started = time.perf_counter_ns()
            try:
                backing_id = device.backing_open(self._dev_fd, fd)
            except OSError:
                os.close(fd)
                raise
            self.open_ns_total += time.perf_counter_ns() - started
            self.opens_total += 1
            self.ids_now += 1
            self.ids_peak = max(self.ids_peak, self.ids_now)
            if self._policy == "keep":
                node.backing_fd = fd
            else:
                os.close(fd)
            node.backing_id = backing_id
            node.opens = 1
            return backing_id

    def release(self, node: BackedNode) -> None:
        """Count one release of `node`; the last one closes or caches its backing id."""
        with self._lock:
            node.opens -= 1
            if node.opens > 0 or not node.backing_id:
                return
            if self._policy != "cache":
                self._drop(node)
                return
            self._idle[node] = None
            while len(self._idle) > self._cache_size:
                self._drop(self._idle.popitem(last=False)[0])

    def forget(self, node: BackedNode) -> None:
        """The kernel forgot `node`: a cached id can never be reused, close it."""
        with self._lock:
            if node in self._idle:
                del self._idle[node]
                self._drop(node)

    def stats(self) -> dict[str, int]:
        """The stats file's backing-id counters."""
        return dict(zip(STATS, (self.ids_now, self.ids_peak, self.opens_total, self.closes_total,
                                self.open_ns_total, self.close_ns_total)))

    def _drop(self, node: BackedNode) -> None:
        started = time.perf_counter_ns()
        try:
            device.backing_close(self._dev_fd, node.backing_id)
        except OSError:
            pass  # the connection is gone: the kernel already dropped every id
        self.close_ns_total += time.perf_counter_ns() - started
        self.closes_total += 1
        self.ids_now -= 1
        node.backing_id = 0
        if node.backing_fd >= 0:
            os.close(node.backing_fd)
            node.backing_fd = -1
