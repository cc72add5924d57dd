"""The built-in FUSE server: a mirror file system speaking the kernel protocol on /dev/fuse,
in plain or passthrough mode (no libfuse)."""

from __future__ import annotations

import os

from bench.system import kernel_config, kernel_version

PASSTHROUGH_MIN_KERNEL = (6, 9)


def passthrough_unavailable_reason() -> str | None:
    """Why passthrough cannot work here (kernel, privileges, /dev/fuse), or None. Cheap: no mount."""
    if kernel_version() < PASSTHROUGH_MIN_KERNEL:
        return "FUSE passthrough needs Linux >= 6.9 (running %d.%d)" % kernel_version()
    if kernel_config("CONFIG_FUSE_PASSTHROUGH") == "n":
        return "the kernel is built without CONFIG_FUSE_PASSTHROUGH"
    if os.geteuid() != 0:
        return "FUSE passthrough needs root (CAP_SYS_ADMIN for FUSE_DEV_IOC_BACKING_OPEN)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing or not accessible"
    return None
