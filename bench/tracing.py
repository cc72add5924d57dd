"""Kernel-side count of FUSE requests per opcode, for any FUSE server.

Counts the fuse:fuse_request_send tracepoint with perf_event_open in counting mode: one
event group per online CPU, whose leader counts every request (of the connection, when
one is given) and whose members count one opcode each, selected by an ftrace filter
("opcode == 15 && connection == 39"). The kernel increments the counters; userspace only
reads them (one read per CPU, an atomic snapshot of the group), so nothing is copied per
request and the cost stays in the kernel's tracepoint path.

Tracepoint fields (6.18): connection (dev_t: the connection number, as in
/sys/fs/fuse/connections), unique, opcode, len. The tracepoint fires where a request is
queued for the server; FORGET, BATCH_FORGET and INTERRUPT take another path and are not
seen, and neither are background requests queued straight to a FUSE-over-io_uring ring.

tracefs is needed once per process, to read the tracepoint id and format. An existing
tracefs mount is used as is; otherwise it is mounted in a private mount namespace of a
short-lived `unshare` child, so the host's mount table never changes and nothing is left
behind, even if this process is killed. The perf events need no mount once open.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import platform
import re
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.errors import BenchError

OPCODES: dict[str, int] = {
    "LOOKUP": 1, "FORGET": 2, "GETATTR": 3, "SETATTR": 4, "READLINK": 5, "SYMLINK": 6,
    "MKNOD": 8, "MKDIR": 9, "UNLINK": 10, "RMDIR": 11, "RENAME": 12, "LINK": 13,
    "OPEN": 14, "READ": 15, "WRITE": 16, "STATFS": 17, "RELEASE": 18, "FSYNC": 20,
    "SETXATTR": 21, "GETXATTR": 22, "LISTXATTR": 23, "REMOVEXATTR": 24, "FLUSH": 25,
    "INIT": 26, "OPENDIR": 27, "READDIR": 28, "RELEASEDIR": 29, "FSYNCDIR": 30,
    "GETLK": 31, "SETLK": 32, "SETLKW": 33, "ACCESS": 34, "CREATE": 35, "INTERRUPT": 36,
    "BMAP": 37, "DESTROY": 38, "IOCTL": 39, "POLL": 40, "NOTIFY_REPLY": 41,
    "BATCH_FORGET": 42, "FALLOCATE": 43, "READDIRPLUS": 44, "RENAME2": 45, "LSEEK": 46,
    "COPY_FILE_RANGE": 47, "SETUPMAPPING": 48, "REMOVEMAPPING": 49, "SYNCFS": 50,
    "TMPFILE": 51, "STATX": 52, "COPY_FILE_RANGE_64": 53,
}

# Each counted opcode costs one fd and one filter evaluation per request on every CPU:
# count what a benchmark report discusses, the rest lands in OTHER.
DEFAULT_OPCODES: tuple[str, ...] = (
    "LOOKUP", "GETATTR", "STATX", "SETATTR", "OPEN", "CREATE", "READ", "WRITE", "FLUSH",
    "RELEASE", "FSYNC", "GETXATTR", "OPENDIR", "READDIR", "READDIRPLUS", "RELEASEDIR",
)
OTHER = "OTHER"  # key in counts(): requests of the connection not in the counted opcodes

EVENT = "fuse/fuse_request_send"

_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
_PERF_TYPE_TRACEPOINT = 2
_PERF_FORMAT_GROUP = 1 << 3
_PERF_ATTR_DISABLED = 1 << 0
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_PERF_IOC_FLAG_GROUP = 1
_PERF_EVENT_IOC_ENABLE = 0x2400
_PERF_EVENT_IOC_DISABLE = 0x2401
_PERF_EVENT_IOC_SET_FILTER = 0x40082406
_LIBC = ctypes.CDLL(None, use_errno=True)
_REFUSED = (errno.EACCES, errno.EPERM)
_UNSUPPORTED = (errno.ENOENT, errno.ENODEV, errno.ENOSYS, errno.EOPNOTSUPP)

_TRACEFS_IN_PRIVATE_NAMESPACE = (
    "mount -t tracefs nodev /sys/kernel/tracing || exit 3\n"
    f"cat /sys/kernel/tracing/events/{EVENT}/format || exit 4\n"
)


class TracingUnavailable(BenchError):
    """Kernel request tracing cannot run here; the message says why."""


class _PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to config1 (PERF_ATTR_SIZE_VER0, 64 bytes)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class Tracepoint:
    """The tracepoint's perf id, its field names and its opcode names (from the print format)."""

    id: int
    fields: frozenset[str]
    opcode_names: dict[str, int]


def connection_of(mountpoint: Path) -> int:
    """The FUSE connection number of a mountpoint, as the tracepoint and fusectl show it.

    It is the superblock's dev_t in the kernel's encoding (major << 20 | minor), which
    differs from st_dev's userspace encoding once the minor number exceeds 255.
    """
    dev = os.stat(mountpoint).st_dev
    return (os.major(dev) << 20) | os.minor(dev)


def parse_format(text: str) -> Tracepoint:
    """Parse a tracefs event `format` file."""
    match = re.search(r"^ID:\s*(\d+)", text, re.MULTILINE)
    if not match:
        raise TracingUnavailable(f"no ID in the format of {EVENT}")
    fields = re.findall(r"field:[^;]*?(\w+)(?:\[[^\]]*\])?;", text)
    names = {name: int(number) for number, name in re.findall(r'\{(\d+), "FUSE_(\w+)"\}', text)}
    return Tracepoint(id=int(match.group(1)), fields=frozenset(fields), opcode_names=names)


def _mounted_tracefs() -> Path | None:
    """Where tracefs is already mounted in this mount namespace, if anywhere."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "tracefs":
            return Path(fields[1].replace("\\040", " "))
    return None


@functools.cache  # failures raise and are not cached: a later call tries again
def tracepoint() -> Tracepoint:
    """Id and fields of fuse:fuse_request_send (raises TracingUnavailable)."""
    mounted = _mounted_tracefs()
    if mounted is not None:
        try:
            return parse_format((mounted / "events" / EVENT / "format").read_text())
        except FileNotFoundError:
            raise TracingUnavailable(
                f"tracepoint {EVENT} not found under {mounted}: kernel without FUSE "
                "tracepoints (before 6.15?) or fuse module not loaded"
            ) from None
    try:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             _TRACEFS_IN_PRIVATE_NAMESPACE],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except FileNotFoundError:
        raise TracingUnavailable("tracefs is not mounted and `unshare` (util-linux) is missing") from None
    reason = {
        3: "tracefs cannot be mounted",
        4: f"tracepoint {EVENT} not found: kernel without FUSE tracepoints (before 6.15?) "
           "or fuse module not loaded",
    }
    if result.returncode != 0:
        why = reason.get(result.returncode, "reading tracefs in a private mount namespace failed")
        raise TracingUnavailable(f"{why}: {result.stderr.strip()}")
    return parse_format(result.stdout)


def online_cpus() -> list[int]:
    """Online CPU numbers, from /sys/devices/system/cpu/online ("0-3,6")."""
    cpus: list[int] = []
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def _perf_event_open(attr: _PerfEventAttr, cpu: int, group_fd: int) -> int:
    """perf_event_open(attr, pid=-1, cpu, group_fd, FD_CLOEXEC); raises OSError."""
    number = _PERF_EVENT_OPEN.get(platform.machine())
    if number is None:
        raise TracingUnavailable(f"perf_event_open syscall number unknown for {platform.machine()}")
    fd = _LIBC.syscall(
        ctypes.c_long(number), ctypes.byref(attr), ctypes.c_long(-1), ctypes.c_long(cpu),
        ctypes.c_long(group_fd), ctypes.c_long(_PERF_FLAG_FD_CLOEXEC),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"perf_event_open: {os.strerror(code)}")
    return fd


def _filter(opcode: int | None, connection: int | None) -> str:
    """The ftrace filter expression for one counter ("" counts everything)."""
    terms = [f"opcode == {opcode}"] if opcode is not None else []
    if connection is not None:
        terms.append(f"connection == {connection}")
    return " && ".join(terms)


def _refusal(error: OSError) -> TracingUnavailable:
    """A clear TracingUnavailable for a perf_event_open refused by the kernel."""
    if error.errno in _REFUSED:
        paranoid = Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
        return TracingUnavailable(
            f"{error.strerror}: system-wide tracepoint counting needs root or CAP_PERFMON "
            f"(kernel.perf_event_paranoid={paranoid}, a lockdown or seccomp policy may also refuse)"
        )
    return TracingUnavailable(f"{error.strerror}: this kernel cannot count tracepoints with perf")


class RequestTracer:
    """Counts FUSE requests per opcode from the kernel, for one connection or all.

    Counting starts in the constructor; use it as a context manager (or call close()).
    After close(), counts() keeps returning the final counts.
    """

    def __init__(self, connection: int | None = None, opcodes: Iterable[str] | None = None) -> None:
        self.connection = connection
        self.opcodes: tuple[str, ...] = tuple(DEFAULT_OPCODES if opcodes is None else opcodes)
        unknown = sorted(set(self.opcodes) - OPCODES.keys())
        if unknown:
            raise ValueError(f"unknown FUSE opcode name(s) {unknown}; known: {sorted(OPCODES)}")
        if len(set(self.opcodes)) != len(self.opcodes):
            raise ValueError(f"opcodes listed twice in {list(self.opcodes)}")
        if os.geteuid() != 0:
            raise TracingUnavailable("counting FUSE requests in the kernel needs root")
        point = tracepoint()
        missing = {"opcode"} | ({"connection"} if connection is not None else set())
        if missing - point.fields:
            raise TracingUnavailable(
                f"{EVENT} has no field(s) {sorted(missing - point.fields)} "
                f"(fields: {sorted(point.fields)})"
            )
        self._id = point.id
        self._fds: list[int] = []
        self._leaders: list[int] = []
        self._final: dict[str, int] | None = None
        try:
            for cpu in online_cpus():
                self._open_group(cpu)
            for leader in self._leaders:
                fcntl.ioctl(leader, _PERF_EVENT_IOC_ENABLE, _PERF_IOC_FLAG_GROUP)
        except OSError as error:
            self._close_fds()
            if error.errno in _REFUSED + _UNSUPPORTED:
                raise _refusal(error) from error
            raise
        except BaseException:
            self._close_fds()
            raise

    def _open_group(self, cpu: int) -> None:
        """Open the total counter (group leader, disabled) and one member per opcode on a CPU."""
        leader = -1
        for opcode in (None, *(OPCODES[name] for name in self.opcodes)):
            attr = _PerfEventAttr(
                type=_PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(_PerfEventAttr), config=self._id,
                read_format=_PERF_FORMAT_GROUP, flags=_PERF_ATTR_DISABLED if leader < 0 else 0,
            )
            fd = _perf_event_open(attr, cpu, leader)
            self._fds.append(fd)
            expression = _filter(opcode, self.connection)
            if expression:
                fcntl.ioctl(fd, _PERF_EVENT_IOC_SET_FILTER, expression.encode() + b"\0")
            if leader < 0:
                leader = fd
                self._leaders.append(fd)

    def counts(self) -> dict[str, int]:
        """Requests per opcode name since the tracer started, plus OTHER for the rest."""
        if self._final is not None:
            return dict(self._final)
        size = 8 * (2 + len(self.opcodes))  # u64 nr, then the leader's value and the members'
        totals = [0] * (1 + len(self.opcodes))
        for leader in self._leaders:
            values = struct.unpack(f"{len(totals) + 1}Q", os.read(leader, size))[1:]
            totals = [a + b for a, b in zip(totals, values)]
        counted = dict(zip(self.opcodes, totals[1:]))
        counted[OTHER] = totals[0] - sum(totals[1:])
        return counted

    def close(self) -> None:
        """Stop counting, keep the final counts and close every perf fd."""
        if self._final is None and self._leaders:
            for leader in self._leaders:
                fcntl.ioctl(leader, _PERF_EVENT_IOC_DISABLE, _PERF_IOC_FLAG_GROUP)
            self._final = self.counts()
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._leaders.clear()

    def __enter__(self) -> RequestTracer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def tracing_unavailable_reason() -> str | None:
    """Why RequestTracer cannot run here (not root, no tracefs, no tracepoint, perf refused), or None."""
    try:
        RequestTracer(opcodes=()).close()
    except TracingUnavailable as error:
        return str(error)
    return None
