"""Kernel-side count of FUSE requests per opcode, for any FUSE server.

A tiny BPF program on the fuse:fuse_request_send tracepoint adds one to a per-CPU array
slot indexed by the request's opcode, for one connection (or all). Userspace only reads
the array (3 fds per tracer), so the cost is the program run per request, flat in the
number of opcodes: 70 ns per run measured here (BPF run-time stats, 2-CPU VM), about
0.1 us per event with the tracepoint's own work. The program runs for every FUSE request
on the machine and filters by connection itself. Per-opcode perf counters
(perf_event_open in counting mode with an ftrace filter each) cost about 40 ns per
attached counter per event instead: 0.6-0.9 us per request for 16 opcodes, about 20 % of
a CPU at 300k requests/s, which is why they are not used.

Tracepoint fields (6.18): connection (the superblock's dev_t in the kernel's encoding,
major << 20 | minor: the number /sys/fs/fuse/connections shows and MountedTarget.connection
holds), unique, opcode, len. The tracepoint fires where a request is queued for the
server; FORGET, BATCH_FORGET and INTERRUPT take another path and are not seen, and
background requests queued straight to a FUSE-over-io_uring ring may not be (not
checked here).

tracefs is needed once per process, to read the tracepoint id and format. An existing
tracefs mount is used as is; otherwise it is mounted in a private mount namespace of a
short-lived `unshare` child, so the host's mount table never changes and nothing is left
behind, even if this process is killed. Attached programs need no mount.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import re
import struct
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.errors import BenchError
from bench.fusefs import libc
from bench.fusefs.kernel import possible_cpus
from bench.fusefs.mounts import mounts
from bench.fusefs.protocol import Opcode

OPCODES: dict[str, int] = {op.name: op.value for op in Opcode}
# Every opcode is counted whatever is asked; these only choose the names counts() lists.
DEFAULT_OPCODES: tuple[str, ...] = (
    "LOOKUP", "GETATTR", "STATX", "SETATTR", "OPEN", "CREATE", "READ", "WRITE", "FLUSH",
    "RELEASE", "FSYNC", "GETXATTR", "OPENDIR", "READDIR", "READDIRPLUS", "RELEASEDIR",
)
OTHER = "OTHER"  # key in counts(): requests of the connection with any other opcode

EVENT = "fuse/fuse_request_send"

_REFUSED = (errno.EACCES, errno.EPERM)

_SLOTS = 64  # array slots: opcodes below 64 count in their own slot, any other in slot 0
_BPF_MAP_CREATE, _BPF_MAP_LOOKUP_ELEM, _BPF_PROG_LOAD, _BPF_ENABLE_STATS = 0, 1, 5, 32
_BPF_STATS_RUN_TIME = 0
_PROGRAM_STATS = ("run_cnt", "run_time_ns", "recursion_misses")
_BPF_MAP_TYPE_PERCPU_ARRAY = 6
_BPF_PROG_TYPE_TRACEPOINT = 5
_BPF_FUNC_MAP_LOOKUP_ELEM = 1
_BPF_PSEUDO_MAP_FD = 1
_BPF_ATTR_SIZE = 128  # a zero-padded prefix of union bpf_attr; the kernel takes what it knows
_PERF_TYPE_TRACEPOINT = 2
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_PERF_EVENT_IOC_ENABLE = 0x2400
_PERF_EVENT_IOC_SET_BPF = 0x40042408

_TRACEFS_IN_PRIVATE_NAMESPACE = (
    "mount -t tracefs nodev /sys/kernel/tracing || exit 3\n"
    f"cat /sys/kernel/tracing/events/{EVENT}/format || exit 4\n"
)


class TracingUnavailable(BenchError):
    """Kernel request tracing cannot run here; the message says why."""


@dataclass(frozen=True)
class Field:
    """Where a tracepoint field sits in the record the BPF program sees."""

    offset: int
    size: int


@dataclass(frozen=True)
class Tracepoint:
    """The tracepoint's perf id, its fields and its opcode names (from the print format)."""

    id: int
    fields: dict[str, Field]
    opcode_names: dict[str, int]


def parse_format(text: str) -> Tracepoint:
    """Parse a tracefs event `format` file."""
    match = re.search(r"^ID:\s*(\d+)", text, re.MULTILINE)
    if not match:
        raise TracingUnavailable(f"no ID in the format of {EVENT}")
    fields = {
        name: Field(int(offset), int(size))
        for name, offset, size in re.findall(
            r"field:[^;]*?(\w+)(?:\[[^\]]*\])?;\s*offset:(\d+);\s*size:(\d+);", text
        )
    }
    names = {name: int(number) for number, name in re.findall(r'\{(\d+), "FUSE_(\w+)"\}', text)}
    return Tracepoint(id=int(match.group(1)), fields=fields, opcode_names=names)


def _mounted_tracefs() -> Path | None:
    """Where tracefs is already mounted in this mount namespace, if anywhere."""
    return next((Path(entry.mountpoint) for entry in mounts() if entry.fstype == "tracefs"), None)


_NO_TRACEPOINT = (
    f"tracepoint {EVENT} not found: kernel without FUSE tracepoints (before 6.15?) "
    "or fuse module not loaded"
)


@functools.cache  # failures raise and are not cached: a later call tries again
def tracepoint() -> Tracepoint:
    """Id and fields of fuse:fuse_request_send (raises TracingUnavailable)."""
    mounted = _mounted_tracefs()
    if mounted is not None:
        try:
            return parse_format((mounted / "events" / EVENT / "format").read_text())
        except FileNotFoundError:
            raise TracingUnavailable(f"{_NO_TRACEPOINT} (tracefs at {mounted})") from None
    try:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             _TRACEFS_IN_PRIVATE_NAMESPACE],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except FileNotFoundError:
        raise TracingUnavailable("tracefs is not mounted and `unshare` (util-linux) is missing") from None
    if result.returncode != 0:
        why = {3: "tracefs cannot be mounted", 4: _NO_TRACEPOINT}.get(
            result.returncode, "tracefs is not mounted and cannot be mounted in a private mount namespace")
        raise TracingUnavailable(f"{why}: {result.stderr.strip()}")
    return parse_format(result.stdout)


def _bpf(command: int, attr: bytes) -> int:
    """bpf(command, attr) with attr zero-padded to _BPF_ATTR_SIZE."""
    buffer = ctypes.create_string_buffer(attr, _BPF_ATTR_SIZE)
    return libc.syscall("bpf", command, ctypes.addressof(buffer), _BPF_ATTR_SIZE)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction (struct bpf_insn)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def counting_program(map_fd: int, opcode: Field, connection: Field | None, connection_id: int | None) -> bytes:
    """eBPF: if the record's connection matches (when given), add 1 to the opcode's map slot.

    r6 = ctx; [if (u32)ctx[connection] != id goto out;] r2 = ctx[opcode];
    if r2 >= 64: r2 = 0; key = r2; r0 = lookup(map, &key); if r0: atomic *r0 += 1; out: return 0
    """
    filtered = connection_id is not None
    body = [_insn(0xBF, dst=6, src=1)]  # mov64 r6, r1
    if filtered:
        body.append(_insn(0x61, dst=2, src=6, off=connection.offset))  # ldxw r2, [r6+off]
        body.append(None)  # jne32 r2, id, out (patched below, once the length is known)
    body += [
        _insn(0x61, dst=2, src=6, off=opcode.offset),  # ldxw r2, [r6+off]
        _insn(0xA5, dst=2, off=1, imm=_SLOTS),  # jlt r2, 64, +1
        _insn(0xB7, dst=2, imm=0),  # mov64 r2, 0
        _insn(0x63, dst=10, src=2, off=-4),  # stxw [r10-4], r2
        _insn(0x18, dst=1, src=_BPF_PSEUDO_MAP_FD, imm=map_fd), _insn(0),  # ld_imm64 r1, map
        _insn(0xBF, dst=2, src=10),  # mov64 r2, r10
        _insn(0x07, dst=2, imm=-4),  # add64 r2, -4
        _insn(0x85, imm=_BPF_FUNC_MAP_LOOKUP_ELEM),  # call map_lookup_elem
        _insn(0x15, dst=0, off=2, imm=0),  # jeq r0, 0, out
        _insn(0xB7, dst=1, imm=1),  # mov64 r1, 1
        _insn(0xDB, dst=0, src=1, off=0, imm=0),  # lock xadd64 [r0+0], r1
    ]
    out = len(body)
    if filtered:
        # connection ids are u32 and may exceed the signed 32-bit immediate: compare as u32
        body[2] = _insn(0x56, dst=2, off=out - 3, imm=ctypes.c_int32(connection_id).value)
    body += [_insn(0xB7, dst=0, imm=0), _insn(0x95)]  # mov64 r0, 0; exit
    return b"".join(body)


def _refusal(error: OSError) -> TracingUnavailable:
    """A clear TracingUnavailable for a bpf or perf_event_open call the kernel refused."""
    if isinstance(error, libc.UnknownSyscall):
        return TracingUnavailable(error.strerror)
    if error.errno in _REFUSED:
        paranoid = Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
        return TracingUnavailable(
            f"{error.strerror}: BPF tracepoint programs need root (CAP_BPF and CAP_PERFMON); "
            f"kernel.perf_event_paranoid={paranoid}, a lockdown or seccomp policy may also refuse"
        )
    return TracingUnavailable(f"{error.strerror}: this kernel cannot attach BPF programs to tracepoints")


class RequestTracer:
    """Counts FUSE requests per opcode from the kernel, for one connection or all.

    The constructor only checks its arguments; counting starts in start() (or on entering
    a `with` block), which raises TracingUnavailable when the kernel refuses. After
    close() (or leaving the block), counts() keeps returning the final counts.
    """

    def __init__(self, connection: int | None = None, opcodes: Iterable[str] | None = None) -> None:
        self.connection = connection
        self.opcodes: tuple[str, ...] = tuple(DEFAULT_OPCODES if opcodes is None else opcodes)
        unknown = sorted(set(self.opcodes) - OPCODES.keys())
        if unknown:
            raise ValueError(f"unknown FUSE opcode name(s) {unknown}; known: {sorted(OPCODES)}")
        if len(set(self.opcodes)) != len(self.opcodes):
            raise ValueError(f"opcodes listed twice in {list(self.opcodes)}")
        if connection is not None and not 0 <= connection < 1 << 32:
            raise ValueError(f"connection {connection} is not a dev_t")
        self._fds: list[int] = []
        self._map = self._program = -1
        self._cpus = 0
        self._final: dict[str, int] | None = None
        self._final_program_stats: dict[str, int] | None = None

    def start(self) -> RequestTracer:
        """Attach the counting program to the tracepoint; counts() counts from here."""
        if self._fds or self._final is not None:
            raise RuntimeError("a RequestTracer starts once")
        if os.geteuid() != 0:
            raise TracingUnavailable("counting FUSE requests in the kernel needs root")
        point = tracepoint()
        needed = ["opcode"] + (["connection"] if self.connection is not None else [])
        unusable = [name for name in needed if name not in point.fields or point.fields[name].size != 4]
        if unusable:
            raise TracingUnavailable(
                f"{EVENT} has no 4-byte field(s) {unusable} (fields: {sorted(point.fields)})"
            )
        self._cpus = possible_cpus()
        try:
            self._map = self._keep(_bpf(_BPF_MAP_CREATE, struct.pack(
                "<IIIII", _BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, _SLOTS, 0)))
            self._program = self._keep(self._load(counting_program(
                self._map, point.fields["opcode"], point.fields.get("connection"), self.connection)))
            # One tracepoint event on CPU 0 is enough: BPF programs hang on the
            # tracepoint itself and run on every CPU.
            attr = ctypes.create_string_buffer(struct.pack("<IIQ", _PERF_TYPE_TRACEPOINT, 64, point.id), 64)
            event = self._keep(libc.syscall(
                "perf_event_open", ctypes.addressof(attr), -1, 0, -1, _PERF_FLAG_FD_CLOEXEC))
            fcntl.ioctl(event, _PERF_EVENT_IOC_SET_BPF, self._program)
            fcntl.ioctl(event, _PERF_EVENT_IOC_ENABLE, 0)
        except OSError as error:
            self._close_fds()
            if error.errno in _REFUSED + (errno.ENOENT, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise _refusal(error) from error
            raise
        except BaseException:
            self._close_fds()
            raise
        return self

    def _keep(self, fd: int) -> int:
        """Remember an fd for close() and return it."""
        self._fds.append(fd)
        return fd

    @staticmethod
    def _load(program: bytes) -> int:
        """Load a tracepoint program; a verifier rejection raises with the verifier's log."""
        code = ctypes.create_string_buffer(program, len(program))
        license_ = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(1 << 16)
        attr = struct.pack(
            "<IIQQIIQII16s", _BPF_PROG_TYPE_TRACEPOINT, len(program) // 8, ctypes.addressof(code),
            ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0, 0, b"fusebench_reqs",
        )
        try:
            return _bpf(_BPF_PROG_LOAD, attr)
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EINVAL) and log.value:
                raise TracingUnavailable(f"the BPF verifier refused the program: {log.value.decode()}") from error
            raise

    def _slot(self, slot: int) -> int:
        """A map slot's count, summed over CPUs."""
        key = ctypes.c_uint32(slot)
        values = ctypes.create_string_buffer(8 * self._cpus)
        _bpf(_BPF_MAP_LOOKUP_ELEM, struct.pack(
            "<IIQQQ", self._map, 0, ctypes.addressof(key), ctypes.addressof(values), 0))
        return sum(struct.unpack(f"{self._cpus}Q", values.raw))

    def counts(self) -> dict[str, int]:
        """Requests per opcode name since the tracer started, plus OTHER for the rest.

        Slots are read one after another: while requests flow, the figures are from
        instants a few microseconds apart.
        """
        if self._final is not None:
            return dict(self._final)
        if not self._fds:
            raise RuntimeError("RequestTracer not started: use it in a `with` block or call start()")
        per_slot = [self._slot(slot) for slot in range(_SLOTS)]
        counted = {name: per_slot[OPCODES[name]] for name in self.opcodes}
        counted[OTHER] = sum(per_slot) - sum(counted.values())
        return counted

    def program_stats(self) -> dict[str, int]:
        """The counting program's run_cnt, run_time_ns and recursion_misses (from fdinfo).

        run_cnt and run_time_ns only move while run-time statistics are on (see
        bpf_run_time_stats()) and cover every FUSE request on the machine, whatever the
        connection; recursion_misses counts requests the kernel sent while it could not run the program
        on that CPU (another BPF program was running there): requests not counted.
        """
        if self._final_program_stats is not None:
            return dict(self._final_program_stats)
        if not self._fds:
            raise RuntimeError("RequestTracer not started: use it in a `with` block or call start()")
        found = dict.fromkeys(_PROGRAM_STATS, 0)
        for line in Path(f"/proc/self/fdinfo/{self._program}").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in found:
                found[key] = int(value)
        return found

    def close(self) -> None:
        """Stop counting, keep the final counts and close every fd."""
        if self._final is None and self._fds:
            self._final = self.counts()
            self._final_program_stats = self.program_stats()
        self._close_fds()

    def _close_fds(self) -> None:
        # the perf event goes first: closing it detaches the program from the tracepoint
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> RequestTracer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def bpf_run_time_stats() -> Iterator[None]:
    """While inside, the kernel times every BPF program run (for measuring the tracer's cost).

    Uses BPF_ENABLE_STATS, which lasts as long as its fd: nothing stays on afterwards.
    Timing adds two clock reads to every BPF program run on the machine.
    """
    fd = _bpf(_BPF_ENABLE_STATS, struct.pack("<I", _BPF_STATS_RUN_TIME))
    try:
        yield
    finally:
        os.close(fd)


def tracing_unavailable_reason() -> str | None:
    """Why RequestTracer cannot run here (not root, no tracefs, no tracepoint, BPF refused), or None."""
    try:
        with RequestTracer(opcodes=()):
            pass
    except TracingUnavailable as error:
        return str(error)
    return None
