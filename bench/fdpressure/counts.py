"""Readings of everything an open file can cost: the daemon's and the client's fds, file-nr,
the kernel's backing-file slab, the daemon's memory and its live backing ids."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.errors import BenchError
from bench.system import BACKING_FILE_SLAB, drop_caches, file_nr, slab_active_objects
from bench.targets import MountedTarget

SLAB_SHRINK = Path(f"/sys/kernel/slab/{BACKING_FILE_SLAB}/shrink")
NOISE_WINDOW_S = 0.3
NOISE_POLL_S = 0.01


class FdPressureError(BenchError):
    """A step that could not be measured (client or daemon died or hung)."""


@dataclass(frozen=True)
class Counts:
    """One reading of everything an open file can cost; None where not measurable."""

    file_nr: int
    daemon_fds: int | None
    daemon_rss_kib: int | None
    client_fds: int | None
    bfilp_active: int | None
    bfilp_objsize: int | None
    backing_ids: int | None


def _fd_count(pid: int, role: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        raise FdPressureError(f"the {role} (pid {pid}) exited during the measurement") from None


def _rss_kib(pid: int, role: str) -> int:
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except psutil.NoSuchProcess:
        raise FdPressureError(f"the {role} (pid {pid}) exited during the measurement") from None


def nofile_soft_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of a process (from /proc/PID/limits); None if unlimited or unreadable."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return int(soft) if soft.isdigit() else None
    return None


def backing_file_objects() -> tuple[int, int] | None:
    """Exact active objects (and object size) of the bfilp slab; None when unreadable.

    /proc/slabinfo counts objects cached per CPU (cpu slabs, sheaves) as active, which is
    off by up to a hundred here; shrinking the cache first returns them, making it exact.
    """
    try:
        SLAB_SHRINK.write_text("1\n")
    except OSError:
        pass  # not root, or no SLUB sysfs: the approximate figure still helps
    return slab_active_objects(BACKING_FILE_SLAB)


def take_counts(mounted: MountedTarget, client_pid: int | None = None) -> Counts:
    """Read every count once (the daemon's, the client's when given, and system-wide ones)."""
    pid = mounted.daemon_pid
    asked = time.time()
    # file-nr and the fd tables first and together: other processes move file-nr meanwhile.
    files = file_nr()
    daemon_fds = _fd_count(pid, "daemon") if pid else None
    client_fds = _fd_count(client_pid, "client") if client_pid else None
    slab = backing_file_objects()
    # The stats file is rewritten a few times a second: wait for figures from after `asked`.
    stats = mounted.read_stats(newer_than=asked)
    return Counts(
        file_nr=files,
        daemon_fds=daemon_fds,
        daemon_rss_kib=_rss_kib(pid, "daemon") if pid else None,
        client_fds=client_fds,
        bfilp_active=slab[0] if slab else None,
        bfilp_objsize=slab[1] if slab else None,
        backing_ids=stats.get("backing_ids") if stats else None,
    )


def file_nr_noise(window_s: float = NOISE_WINDOW_S) -> int:
    """How far file-nr moves by itself (other processes) over `window_s`: max - min of readings."""
    readings = [file_nr()]
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        time.sleep(NOISE_POLL_S)
        readings.append(file_nr())
    return max(readings) - min(readings)


def drop_dentries_and_inodes() -> bool:
    """Evict unused dentries and inodes (FUSE FORGETs follow); False when not permitted."""
    try:
        drop_caches(level=2)
    except PermissionError:
        return False
    return True
