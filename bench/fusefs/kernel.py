"""What the running kernel offers a FUSE server: its version, its build options, and whether
passthrough can work here (a cheap static check: nothing is mounted)."""

from __future__ import annotations

import gzip
import os
import platform
import re
from pathlib import Path

PASSTHROUGH_MIN_KERNEL = (6, 9)
URING_MIN_KERNEL = (6, 14)
# The fuse module's switch for FUSE over io_uring (CONFIG_FUSE_IO_URING): Y or N, root may write it.
ENABLE_URING = Path("/sys/module/fuse/parameters/enable_uring")


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    match = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


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


def possible_cpus(text: str | None = None) -> int:
    """How many CPUs the kernel may ever run (/sys/devices/system/cpu/possible, e.g. `0-3,8`, or
    `text` in that format): the number of FUSE ring queues, and of per-CPU BPF map values."""
    if text is None:
        text = Path("/sys/devices/system/cpu/possible").read_text()
    count = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def uring_missing(parameter: Path = ENABLE_URING) -> str:
    """What to say when the kernel has no FUSE over io_uring (no `parameter`)."""
    return (f"the kernel has no FUSE over io_uring ({parameter} does not exist): it needs Linux "
            "%d.%d or newer built with CONFIG_FUSE_IO_URING=y" % URING_MIN_KERNEL)


def uring_unavailable_reason(parameter: Path = ENABLE_URING) -> str | None:
    """Why FUSE over io_uring cannot work here (kernel, build option), or None. The parameter
    being N is not a reason: root turns it on (bench.system.fuse_uring)."""
    return None if parameter.exists() else uring_missing(parameter)


def passthrough_unavailable_reason() -> str | None:
    """Why passthrough cannot work here (kernel, privileges, /dev/fuse), or None."""
    if kernel_version() < PASSTHROUGH_MIN_KERNEL:
        return "FUSE passthrough needs Linux >= %d.%d (running %d.%d)" % (*PASSTHROUGH_MIN_KERNEL, *kernel_version())
    if kernel_config("CONFIG_FUSE_PASSTHROUGH") == "n":
        return "the kernel is built without CONFIG_FUSE_PASSTHROUGH"
    if os.geteuid() != 0:
        return "FUSE passthrough needs root (CAP_SYS_ADMIN for FUSE_DEV_IOC_BACKING_OPEN)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing or not accessible"
    return None
