"""The mount table, FUSE connections, unmounting and aborting: what the server needs to take
its own mount down and what fusebench needs to find and clear any FUSE mount.

Nothing here stat()s a mountpoint: on a FUSE mount that sends a request to the daemon, which
may be the very daemon that stopped answering. Mounts are read from mountinfo, connections
from fusectl and /proc/PID/fdinfo.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.fusefs import libc

FUSECTL_DIR = Path("/sys/fs/fuse/connections")
# Serialises mounting and unmounting fusectl between processes (root only, like the abort itself).
FUSECTL_LOCK = Path("/run/fusefs-fusectl.lock")
MNT_DETACH = 2
BUSY_RETRY_S = 0.1


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mountpoint: str
    fstype: str
    source: str
    major: int
    minor: int

    @property
    def is_fuse(self) -> bool:
        """True for fuse, fuse.NAME and fuseblk mounts (not fusectl)."""
        return self.fstype in ("fuse", "fuseblk") or self.fstype.startswith("fuse.")

    @property
    def connection(self) -> int | None:
        """The FUSE connection number (the kernel's dev_t, as fusectl names it), None if not FUSE."""
        return (self.major << 20) | self.minor if self.is_fuse else None


def _unescape(field: bytes) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)
    return os.fsdecode(raw)


def parse_mountinfo(data: bytes) -> list[MountEntry]:
    """Parse the text of /proc/PID/mountinfo."""
    entries = []
    for line in data.splitlines():
        fields = line.split(b" ")
        if b"-" not in fields:
            continue
        sep = fields.index(b"-", 6)
        major, minor = fields[2].split(b":")
        entries.append(
            MountEntry(
                mountpoint=_unescape(fields[4]),
                fstype=_unescape(fields[sep + 1]),
                source=_unescape(fields[sep + 2]),
                major=int(major),
                minor=int(minor),
            )
        )
    return entries


def mounts() -> list[MountEntry]:
    """The mounts visible to this process, in mount order."""
    return parse_mountinfo(Path("/proc/self/mountinfo").read_bytes())


def canonical(path: str | os.PathLike) -> str:
    """`path` absolute, with its parent's symlinks resolved but not the last part.

    Resolving the mountpoint itself would stat() it, which asks the FUSE daemon and may hang.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


def mount_entry(path: str | os.PathLike) -> MountEntry | None:
    """The topmost mount at `path`, or None when nothing is mounted there."""
    target = canonical(path)
    found = [entry for entry in mounts() if entry.mountpoint == target]
    return found[-1] if found else None


def is_mounted(path: str | os.PathLike) -> bool:
    """True when something is mounted at `path` (read from mountinfo, no request to the mount)."""
    return mount_entry(path) is not None


def connection_id(mountpoint: str | os.PathLike) -> int | None:
    """The FUSE connection number of the mount at `mountpoint`, or None."""
    entry = mount_entry(mountpoint)
    return entry.connection if entry else None


def connection_holders(connection: int) -> list[int]:
    """Pids holding a /dev/fuse fd of `connection` (fdinfo `fuse_connection: N`, Linux 6.16+)."""
    holders = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in os.listdir(pid_dir / "fd"):
                if os.readlink(pid_dir / "fd" / fd) != "/dev/fuse":
                    continue
                info = (pid_dir / "fdinfo" / fd).read_text()
                if any(line.split() == ["fuse_connection:", str(connection)] for line in info.splitlines()):
                    holders.append(int(pid_dir.name))
                    break
        except OSError:
            continue  # the process exited or is not ours to read
    return sorted(holders)


# ---------------------------------------------------------------- abort


@contextlib.contextmanager
def _fusectl() -> Iterator[Path]:
    """/sys/fs/fuse/connections with fusectl mounted; unmounted again if mounted here."""
    with open(FUSECTL_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mounted_here = False
        if not is_mounted(FUSECTL_DIR):
            libc.mount("fusectl", str(FUSECTL_DIR), "fusectl", 0, None)
            mounted_here = True
        try:
            yield FUSECTL_DIR
        finally:
            if mounted_here:
                with contextlib.suppress(OSError):
                    libc.umount2(str(FUSECTL_DIR), MNT_DETACH)


@contextlib.contextmanager
def _connection_dir(connection: int, what: str) -> Iterator[Path]:
    """fusectl's directory of `connection` (fusectl mounted meanwhile if needed). Raises OSError
    when not root or fusectl cannot be mounted."""
    if os.geteuid() != 0:
        raise OSError(errno.EPERM, f"{what} of FUSE connection {connection} needs root (fusectl)")
    with _fusectl() as fusectl:
        yield fusectl / str(connection)


def _control(connection: int, name: str, value: str | None = None) -> str | None:
    """Write `value` to, or else read, the fusectl file `name` of `connection`; None when the
    connection (or the file) does not exist. Raises OSError when not root or fusectl cannot be mounted."""
    with _connection_dir(connection, f"the {name} file") as directory:
        path = directory / name
        try:
            if value is None:
                return path.read_text()
            path.write_text(value)
            return value
        except FileNotFoundError:
            return None


def connection_files(connection: int) -> list[str]:
    """The names in fusectl's directory of `connection` (mounting fusectl if needed), [] when the
    connection no longer exists. Raises OSError when not root or fusectl cannot be mounted."""
    with _connection_dir(connection, "the fusectl directory") as directory:
        try:
            return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []


def backing_files_listed(connection: int) -> int | None:
    """How many backing files the kernel lists for `connection` in fusectl's `backing_files` (one
    a line; proposed upstream in 2025); None when this kernel has no such file, the connection
    is gone or fusectl cannot be read (not root)."""
    try:
        text = _control(connection, "backing_files")
    except OSError:
        return None
    return None if text is None else sum(1 for line in text.splitlines() if line.strip())


def abort_connection(connection: int) -> bool:
    """Abort a FUSE connection: every waiting request fails and the daemon is cut off.

    Returns False when the connection no longer exists; raises OSError when it cannot be
    aborted (not root, fusectl cannot be mounted).
    """
    return _control(connection, "abort", "1") is not None


def waiting_requests(connection: int) -> int | None:
    """Requests of `connection` the daemon has not answered yet (fusectl `waiting`: queued,
    being read or being served); None when the connection no longer exists. Raises OSError
    as abort_connection does."""
    text = _control(connection, "waiting")
    return None if text is None else int(text)


# ---------------------------------------------------------------- unmount


def _umount(path: str, flags: int) -> int:
    """Unmount once; 0 or the errno. Root calls umount2(2), anyone else fusermount3 -u."""
    if os.geteuid() == 0:
        try:
            libc.umount2(path, flags)
        except OSError as exc:
            return exc.errno
        return 0
    argv = ["fusermount3", "-u"] + (["-z"] if flags & MNT_DETACH else []) + ["--", path]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return 0 if done.returncode == 0 else errno.EBUSY


def _umount_within(path: str, flags: int, timeout: float) -> int | None:
    """_umount in a helper thread; None when it is still blocked after `timeout` (a hung daemon)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(_umount(path, flags)), daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else None


def unmount(path: str | os.PathLike, timeout: float = 5.0, *, connection: int | None = None) -> None:
    """Unmount `path`: retry while busy until `timeout`, then detach lazily. Nothing mounted: done.

    If the unmount blocks (the daemon does not answer), the FUSE connection is aborted first.
    Raises OSError when even the lazy detach fails.
    """
    target = canonical(path)
    if not is_mounted(target):
        return
    if connection is None:
        connection = connection_id(target)
    deadline = time.monotonic() + timeout
    while True:
        err = _umount_within(target, 0, max(deadline - time.monotonic(), 0.5))
        if err == 0 or not is_mounted(target):
            return
        if err is None:
            if connection is not None:
                abort_connection(connection)
            break
        if err != errno.EBUSY or time.monotonic() >= deadline:
            break
        time.sleep(BUSY_RETRY_S)
    err = _umount_within(target, MNT_DETACH, timeout)
    if is_mounted(target):
        reason = "umount2 blocked" if err is None else os.strerror(err)
        raise OSError(err or errno.EBUSY, f"cannot unmount {target}: {reason}")
