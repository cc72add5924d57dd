"""/dev/fuse: open and mount (mount(2) as root, fusermount3 otherwise), clone, backing ioctls.

Unmounting is bench.fusefs.mounts.unmount, the same for the server and for fusebench."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import subprocess

from bench.fusefs import libc
from bench.fusefs.protocol import (
    BACKING_MAP,
    FUSE_DEV_IOC_BACKING_CLOSE,
    FUSE_DEV_IOC_BACKING_OPEN,
    FUSE_DEV_IOC_CLONE,
    U32,
)

DEV_FUSE = "/dev/fuse"
FSNAME = "fusebench"
MS_NOSUID = 2
MS_NODEV = 4

def mount_root(mountpoint: str, max_read: int) -> int:
    """Open /dev/fuse and mount it on `mountpoint` with mount(2); return the session fd."""
    fd = os.open(DEV_FUSE, os.O_RDWR | os.O_CLOEXEC)
    data = (
        f"fd={fd},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other,max_read={max_read}"
    )
    try:
        libc.mount(FSNAME, mountpoint, f"fuse.{FSNAME}", MS_NOSUID | MS_NODEV, data)
    except OSError:
        os.close(fd)
        raise
    return fd


def mount_fusermount(mountpoint: str, max_read: int) -> int:
    """Mount through fusermount3 (unprivileged); it passes the /dev/fuse fd back over a socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        opts = f"fsname={FSNAME},subtype={FSNAME},default_permissions,max_read={max_read}"
        proc = subprocess.run(
            ["fusermount3", "-o", opts, "--", mountpoint],
            env={**os.environ, "_FUSE_COMMFD": str(theirs.fileno())},
            pass_fds=[theirs.fileno()], capture_output=True, text=True, check=False,
        )
        theirs.close()
        if proc.returncode != 0:
            raise OSError(errno.EPERM, f"fusermount3 failed: {proc.stderr.strip() or proc.returncode}")
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        if not fds:
            raise OSError(errno.EIO, "fusermount3 did not pass a /dev/fuse fd")
        os.set_inheritable(fds[0], False)
        return fds[0]
    finally:
        theirs.close()
        ours.close()


def clone(session_fd: int) -> int:
    """A new /dev/fuse fd serving the same connection (one per worker thread)."""
    fd = os.open(DEV_FUSE, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, FUSE_DEV_IOC_CLONE, U32.pack(session_fd))
    except OSError:
        os.close(fd)
        raise
    return fd


def backing_open(dev_fd: int, file_fd: int) -> int:
    """Register `file_fd` as a passthrough backing file; return its backing id."""
    buf = bytearray(BACKING_MAP.pack(file_fd, 0, 0))
    return fcntl.ioctl(dev_fd, FUSE_DEV_IOC_BACKING_OPEN, buf, True)


def backing_close(dev_fd: int, backing_id: int) -> None:
    """Drop the daemon's registration of a backing id."""
    fcntl.ioctl(dev_fd, FUSE_DEV_IOC_BACKING_CLOSE, bytearray(U32.pack(backing_id)), True)
