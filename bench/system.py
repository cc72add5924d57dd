"""Facts about this machine and the few system-wide knobs fusebench touches."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import leftovers
from bench.errors import BenchError, InputError
from bench.fusefs.kernel import ENABLE_URING, uring_unavailable_reason

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
MEMINFO = Path("/proc/meminfo")
FILE_NR = Path("/proc/sys/fs/file-nr")
SLABINFO = Path("/proc/slabinfo")
BACKING_FILE_SLAB = "bfilp"  # the kernel's internal struct backing_file (passthrough)
# What every fdinfo shows (fuse_connection: that of /dev/fuse); anything else is a view of more.
USUAL_FDINFO = frozenset({"pos", "flags", "mnt_id", "ino", "fuse_connection"})


def is_root() -> bool:
    """True when running with uid 0."""
    return os.geteuid() == 0


def drop_caches(level: int = 3) -> None:
    """Drop the page cache (1), dentries and inodes (2) or both (3); root only.

    Dirty pages are written back first when the page cache is dropped (they cannot be dropped).
    """
    if level & 1:
        os.sync()
    DROP_CACHES.write_text(f"{level}\n")


class HugePagesError(BenchError):
    """The kernel could not set aside the huge pages a run needs."""


def free_hugepages() -> int:
    """Free huge pages of the default size (HugePages_Free in /proc/meminfo)."""
    match = re.search(r"^HugePages_Free:\s+(\d+)", MEMINFO.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


@contextlib.contextmanager
def hugepages(count: int) -> Iterator[None]:
    """At least `count` free huge pages while the `with` body runs (root). Only the missing
    ones are added to vm.nr_hugepages, and they are given back afterwards."""
    missing = count - free_hugepages() if count else 0
    if missing <= 0:
        yield
        return
    before = int(NR_HUGEPAGES.read_text())
    # Recorded first: a run killed while the pages are set aside still gets them back (leftovers).
    entry = leftovers.register("hugepages", settings={str(NR_HUGEPAGES): str(before)})
    try:
        NR_HUGEPAGES.write_text(f"{before + missing}\n")
        got = int(NR_HUGEPAGES.read_text()) - before
        if got < missing:
            raise HugePagesError(
                f"buffers: hugepages needs {count} free 2 MiB huge pages; the kernel found only "
                f"{got} of the {missing} missing (memory too fragmented: try again after "
                "`echo 1 > /proc/sys/vm/compact_memory`, or use smaller bs x iodepth)")
        yield
    finally:
        NR_HUGEPAGES.write_text(f"{before}\n")
        leftovers.unregister(entry)


class UringUnavailable(InputError):
    """FUSE over io_uring cannot be turned on here: no kernel support, or no privilege to switch it."""


def uring_parameter(path: Path = ENABLE_URING) -> str | None:
    """The fuse module's `enable_uring` parameter (`Y` or `N`), None when the kernel has none."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def fuse_uring(path: Path = ENABLE_URING) -> Iterator[str]:
    """FUSE over io_uring allowed (`enable_uring` Y) while the `with` body runs (root); yields the
    value it had before, which is written back on every exit path, once no other fusebench
    process holds it on too (leftovers.hold_setting). UringUnavailable when the kernel has no
    such parameter or it cannot be written."""
    missing = uring_unavailable_reason(path)
    if missing:
        raise UringUnavailable(missing)
    entered = False
    try:
        with leftovers.hold_setting("enable_uring", path, "Y") as before:
            entered = True
            yield before
    except OSError as exc:
        if entered:
            raise
        raise UringUnavailable(f"cannot turn FUSE over io_uring on: writing Y to {path}: {exc.strerror} (switching "
                               "it needs root: run as root or with sudo)") from None


def file_nr() -> int:
    """Allocated file handles system-wide (first field of /proc/sys/fs/file-nr)."""
    return int(FILE_NR.read_text().split()[0])


def slab_objects(names: Collection[str]) -> dict[str, tuple[int, int]]:
    """(active objects, object size in bytes) of each slab cache of `names` found in one read of
    /proc/slabinfo; those not found (or all, when it is unreadable) are left out."""
    try:
        text = SLABINFO.read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in names:
            found[fields[0]] = int(fields[1]), int(fields[3])
    return found


def fdinfo(pid: int | str, fd: int) -> dict[str, str]:
    """The fields of /proc/PID/fdinfo/FD (name -> value; continuation lines such as `lock:` are
    kept under their own name). OSError when the fd or process is gone."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields.setdefault(name.strip(), value.strip())
    return fields


def fuse_device_fds(pid: int) -> list[int]:
    """The fds of process `pid` open on /dev/fuse (a FUSE daemon's connections)."""
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse":
                fds.append(int(fd))
    return sorted(fds)


@dataclass(frozen=True)
class BackingViews:
    """What the kernel shows of a FUSE connection's backing files while one is open through it."""

    connection: int | None
    fusectl: tuple[str, ...]  # the entries of fusectl's directory of the connection
    daemon_fdinfo: tuple[str, ...]  # the field names of the daemon's /dev/fuse fdinfo
    file_fdinfo: tuple[str, ...]  # the field names of the client's fdinfo of the open passthrough file


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict:
    """The environment a result was measured in (recorded in manifest.json)."""
    memory = psutil.virtual_memory()
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_build": platform.version(),
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_bytes": memory.total,
        "python": platform.python_version(),
    }
