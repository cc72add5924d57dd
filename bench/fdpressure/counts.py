"""Readings of everything an open file can cost: the daemon's and the clients' fds, file-nr,
the slab caches an open file pins, /proc/meminfo's slab totals, the daemon's memory, its live
backing ids and what the kernel itself lists of them."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.environment import mount_of
from bench.errors import BenchError
from bench.fusefs.mounts import backing_files_listed
from bench.system import (
    BACKING_FILE_SLAB,
    MEMINFO,
    drop_caches,
    file_nr,
    slab_objects,
)
from bench.targets import MountedTarget

SLAB_ROOT = Path("/sys/kernel/slab")
FILE_MAX = Path("/proc/sys/fs/file-max")
NR_OPEN = Path("/proc/sys/fs/nr_open")
NOISE_WINDOW_S = 0.3
NOISE_POLL_S = 0.01

# The inode slab of each backing file system an open backing file pins (by fs type).
INODE_SLABS = {"ext4": "ext4_inode_cache", "xfs": "xfs_inode", "btrfs": "btrfs_inode", "tmpfs": "shmem_inode_cache",
               "f2fs": "f2fs_inode_cache", "ext2": "ext2_inode_cache", "ext3": "ext4_inode_cache"}


class FdPressureError(BenchError):
    """A step that could not be measured (client or daemon died or hung)."""


@dataclass(frozen=True)
class Slabs:
    """The slab caches an open file through a FUSE mount can pin: the FUSE file and the daemon's
    backing file (`filp`), the kernel's backing file (`bfilp`), both dentries, the FUSE inode and
    the backing file system's inode."""

    backing_inode: str | None  # the backing file system's inode slab, None when unknown

    def names(self) -> dict[str, str]:
        """Role -> slab name, for the slabs this kernel has."""
        names = {"filp": "filp", "bfilp": BACKING_FILE_SLAB, "dentry": "dentry", "fuse_inode": "fuse_inode"}
        if self.backing_inode:
            names["backing_inode"] = self.backing_inode
        return names

    @classmethod
    def for_source(cls, source: Path) -> Slabs:
        """The slabs for backing files under `source` (its file system's inode slab)."""
        mount = mount_of(source)
        return cls(INODE_SLABS.get(mount["fs_type"]) if mount else None)


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
    backing_closes: int | None = None
    kernel_listed: int | None = None
    filp_active: int | None = None
    dentry_active: int | None = None
    fuse_inode_active: int | None = None
    backing_inode_active: int | None = None
    slab_bytes: int | None = None
    meminfo_slab_kib: int | None = None
    meminfo_sunreclaim_kib: int | None = None


def _fd_count(pid: int, role: str) -> int:
    # The directory's size is its fd count (Linux 6.2+) and, unlike a listing, makes no dentry
    # and proc inode per fd, which the slabs would count as what the open files cost.
    path = f"/proc/{pid}/fd"
    try:
        return os.stat(path).st_size or len(os.listdir(path))
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


def exact_slabs(names: Collection[str]) -> dict[str, tuple[int, int]]:
    """Exact active objects (and object size) of each slab cache of `names` that can be read.

    /proc/slabinfo counts objects cached per CPU (cpu slabs, sheaves) as active, which is
    off by up to a hundred here; shrinking each cache first returns them, making it exact.
    """
    for name in names:
        try:
            (SLAB_ROOT / name / "shrink").write_text("1\n")
        except OSError:
            pass  # not root, or no SLUB sysfs: the approximate figure still helps
    return slab_objects(names)


def meminfo_kib(text: str) -> dict[str, int]:
    """The kB fields of /proc/meminfo's text, by name."""
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


def system_limits() -> tuple[int | None, int | None]:
    """fs.file-max and fs.nr_open (read only: a run never changes them)."""
    def read(path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return read(FILE_MAX), read(NR_OPEN)


def take_counts(mounted: MountedTarget | None, client_pids: Sequence[int] = (), slabs: Slabs = Slabs(None),
                listing: bool = True) -> Counts:
    """Read every count once: the daemon's (when mounted), the clients' (when given) and the
    system-wide ones; the kernel's listing of backing files unless `listing` is False (it may
    mount fusectl)."""
    pid = mounted.daemon_pid if mounted else None
    asked = time.time()
    # The slabs before the fd tables: where /proc/PID/fd must be listed (before Linux 6.2), the
    # listing makes a dentry and an inode for every fd.
    names = slabs.names()
    found = exact_slabs(names.values())
    objects = {role: found.get(name) for role, name in names.items()}
    known = [found for found in objects.values() if found]
    try:
        memory = meminfo_kib(MEMINFO.read_text())
    except OSError:
        memory = {}
    # file-nr and the fd tables together: other processes move file-nr meanwhile.
    files = file_nr()
    daemon_fds = _fd_count(pid, "daemon") if pid else None
    client_fds = sum(_fd_count(client, "client") for client in client_pids) if client_pids else None
    # The stats file is rewritten a few times a second: wait for figures from after `asked`.
    stats = mounted.read_stats(newer_than=asked) if mounted else None
    listed = (backing_files_listed(mounted.connection)
              if listing and mounted and mounted.connection is not None else None)

    def active(role: str) -> int | None:
        return objects[role][0] if objects.get(role) else None

    bfilp = objects.get("bfilp")
    return Counts(
        file_nr=files,
        daemon_fds=daemon_fds,
        daemon_rss_kib=_rss_kib(pid, "daemon") if pid else None,
        client_fds=client_fds,
        bfilp_active=bfilp[0] if bfilp else None,
        bfilp_objsize=bfilp[1] if bfilp else None,
        backing_ids=stats.get("backing_ids") if stats else None,
        backing_closes=stats.get("backing_closes_total") if stats else None,
        kernel_listed=listed,
        filp_active=active("filp"),
        dentry_active=active("dentry"),
        fuse_inode_active=active("fuse_inode"),
        backing_inode_active=active("backing_inode"),
        slab_bytes=sum(count * size for count, size in known) if known else None,
        meminfo_slab_kib=memory.get("Slab"),
        meminfo_sunreclaim_kib=memory.get("SUnreclaim"),
    )


def file_nr_noise(window_s: float = NOISE_WINDOW_S) -> int:
    """How far file-nr moves by itself (other processes) over `window_s`: max - min of readings."""
    readings = [file_nr()]
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        time.sleep(NOISE_POLL_S)
        readings.append(file_nr())
    return max(readings) - min(readings)


def drop_caches_for_baseline() -> None:
    """Drop the page cache, dentries and inodes before a step's first reading, so that the
    backing files' inodes an open pins are counted too (level 2 keeps inodes with cached pages)."""
    try:
        drop_caches(level=3)
    except PermissionError:
        pass  # the step notes it when nothing could be dropped (drop_dentries_and_inodes)


def drop_dentries_and_inodes() -> bool:
    """Evict unused dentries and inodes (FUSE FORGETs follow); False when not permitted."""
    try:
        drop_caches(level=2)
    except PermissionError:
        return False
    return True
