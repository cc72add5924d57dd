"""Memory cgroups that put chosen processes under memory pressure, and nothing else.

The fd-pressure clients open files through a FUSE mount; the dentries and inodes this creates
are charged to their memory cgroup. Once they have closed their files and exited,
`MemoryCgroup.reclaim()` shrinks that cgroup alone: the kernel forgets its inodes (sending
FUSE FORGET to the daemon) while the rest of the machine's caches stay as they are.

Both hierarchies are supported: cgroup v2 (a child of the root with `memory.reclaim`) and
cgroup v1 (a child of the memory hierarchy's root, emptied with `memory.force_empty`, which
the kernel allows only once no process is left in it). Every cgroup made here is recorded in
the leftovers registry, so one left by a killed run is removed by `clear_leftovers()`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import leftovers
from bench.errors import BenchError

MOUNTINFO = Path("/proc/self/mountinfo")
PREFIX = "fusebench"
_numbers = itertools.count(1)


class MemcgError(BenchError):
    """A memory cgroup cannot be made or used here."""


@dataclass(frozen=True)
class Hierarchy:
    """Where memory cgroups are made: the root of a mounted hierarchy with the memory controller."""

    version: int  # 1 or 2
    root: Path


def _mounted_cgroups(mountinfo: Path = MOUNTINFO) -> list[tuple[str, Path, set[str]]]:
    """(fs type, mountpoint, super options) of every mounted cgroup hierarchy whose root is mounted."""
    found = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 10:
            continue
        after = fields[fields.index("-") + 1:]
        fstype, options = after[0], set(after[2].split(",")) if len(after) > 2 else set()
        if fstype in ("cgroup", "cgroup2") and fields[3] == "/":
            found.append((fstype, Path(fields[4].replace("\\040", " ")), options))
    return found


def _controllers(path: Path, name: str) -> set[str]:
    try:
        return set((path / name).read_text().split())
    except OSError:
        return set()


def find_hierarchy(mountinfo: Path = MOUNTINFO) -> Hierarchy | None:
    """The hierarchy memory cgroups are made in: cgroup v2 when its root offers `memory`, else
    the cgroup v1 memory hierarchy; None when neither is mounted."""
    mounted = _mounted_cgroups(mountinfo)
    for fstype, mountpoint, _ in mounted:
        if fstype == "cgroup2" and "memory" in _controllers(mountpoint, "cgroup.controllers"):
            return Hierarchy(2, mountpoint)
    for fstype, mountpoint, options in mounted:
        if fstype == "cgroup" and "memory" in options:
            return Hierarchy(1, mountpoint)
    return None


def memcg_unavailable_reason(mountinfo: Path = MOUNTINFO) -> str | None:
    """Why no memory cgroup can be made here, or None when one can."""
    if os.geteuid() != 0:
        return "memory cgroups need root"
    hierarchy = find_hierarchy(mountinfo)
    if hierarchy is None:
        return ("no memory controller: neither a cgroup v2 hierarchy offering `memory` nor a cgroup v1 "
                "memory hierarchy is mounted")
    if not os.access(hierarchy.root, os.W_OK):
        return f"{hierarchy.root} is not writable (a read-only cgroup mount?)"
    if hierarchy.version == 2 and "memory" not in _controllers(hierarchy.root, "cgroup.subtree_control"):
        # Turning it on would change every cgroup there: the operator's call, not a benchmark's.
        return (f"the memory controller is not enabled for {hierarchy.root}'s children "
                f"(echo +memory > {hierarchy.root}/cgroup.subtree_control)")
    return None


@dataclass(frozen=True)
class MemoryCgroup:
    """A memory cgroup fusebench made (memory_cgroup)."""

    path: Path
    version: int

    @property
    def procs_file(self) -> Path:
        """Writing a pid here moves that process in."""
        return self.path / "cgroup.procs"

    def add(self, pid: int) -> None:
        """Move process `pid` into this cgroup (what it allocates from now on is charged here)."""
        self.procs_file.write_text(f"{pid}\n")

    def pids(self) -> list[int]:
        """The processes in it."""
        return [int(pid) for pid in self.procs_file.read_text().split()]

    def usage_bytes(self) -> int:
        """Memory charged to it now, kernel memory (dentries, inodes) included."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text())

    def reclaim(self) -> float:
        """Reclaim as much of its memory as the kernel can, its dentries and inodes included;
        the seconds it took. On cgroup v1 (memory.force_empty) no process may be left in it
        (MemcgError). Slab objects are freed after an RCU grace period: counters such as
        /proc/slabinfo fall within a second or so after this returns."""
        started = time.monotonic()
        if self.version == 2:
            try:
                (self.path / "memory.reclaim").write_text(f"{max(self.usage_bytes(), 1 << 20)}\n")
            except OSError as exc:
                if exc.errno != errno.EAGAIN:  # EAGAIN: it could not reclaim all it was asked
                    raise
        else:
            left = self.pids()
            if left:
                raise MemcgError(f"cannot empty memory cgroup {self.path}: memory.force_empty (cgroup v1) needs "
                                 f"it empty of processes, and {len(left)} are left (pids {left[:5]})")
            (self.path / "memory.force_empty").write_text("0\n")
        return time.monotonic() - started


@contextlib.contextmanager
def memory_cgroup(label: str, mountinfo: Path = MOUNTINFO) -> Iterator[MemoryCgroup]:
    """A new, uniquely named memory cgroup (fusebench-<pid>-<n> under the hierarchy's root) while
    inside; removed on every exit path, processes still in it moved to its parent first.
    MemcgError when none can be made here (memcg_unavailable_reason)."""
    reason = memcg_unavailable_reason(mountinfo)
    if reason:
        raise MemcgError(f"{label}: {reason}")
    hierarchy = find_hierarchy(mountinfo)
    assert hierarchy is not None  # checked by memcg_unavailable_reason
    path = hierarchy.root / f"{PREFIX}-{os.getpid()}-{next(_numbers)}"
    entry = leftovers.register(label, cgroup=path)  # first: a run killed right after mkdir still has it removed
    try:
        path.mkdir()
        yield MemoryCgroup(path, hierarchy.version)
    except BaseException:
        # Not removable yet: the entry stays and the next clear_leftovers() tries again; an error
        # here must not hide the one that ended the block.
        with contextlib.suppress(OSError):
            leftovers.remove_cgroup(path)
            leftovers.unregister(entry)
        raise
    leftovers.remove_cgroup(path)
    leftovers.unregister(entry)
