"""Facts about this machine and the few system-wide knobs fusebench touches."""

from __future__ import annotations

import gzip
import os
import platform
import re
from pathlib import Path

import psutil

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
FILE_NR = Path("/proc/sys/fs/file-nr")
SLABINFO = Path("/proc/slabinfo")
BACKING_FILE_SLAB = "bfilp"  # the kernel's internal struct backing_file (passthrough)


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


def file_nr() -> int:
    """Allocated file handles system-wide (first field of /proc/sys/fs/file-nr)."""
    return int(FILE_NR.read_text().split()[0])


def slab_active_objects(name: str) -> tuple[int, int] | None:
    """(active objects, object size in bytes) of a slab cache, or None when unreadable."""
    try:
        text = SLABINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return int(fields[1]), int(fields[3])
    return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def kernel_config(option: str) -> str | None:
    """The value of a kernel config option ('y', 'm', ...) from /proc/config.gz or /boot; None if unknown."""
    candidates = [Path("/proc/config.gz"), Path(f"/boot/config-{platform.release()}")]
    pattern = re.compile(rf"^{re.escape(option)}=(.*)$", re.MULTILINE)
    for path in candidates:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        text = gzip.decompress(raw).decode() if path.suffix == ".gz" else raw.decode()
        match = pattern.search(text)
        return match.group(1) if match else "n"
    return None


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    match = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


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
