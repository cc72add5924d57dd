"""A minimal io_uring: one ring with 128-byte SQEs, submissions and completions, on raw
syscalls (include/uapi/linux/io_uring.h). Only what the FUSE transport needs: URING_CMD on
/dev/fuse, and READ and WRITE of backing files.

The ring is created with SINGLE_ISSUER and DEFER_TASKRUN: it belongs to the thread that made
it, and the kernel's deferred work (FUSE copies a request into the daemon's buffers there)
runs only inside `submit_and_wait`, never by interrupting Python elsewhere."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import time

from bench.fusefs import libc

SETUP_SQE128 = 1 << 10
SETUP_SINGLE_ISSUER = 1 << 12
SETUP_DEFER_TASKRUN = 1 << 13
SETUP_NO_SQARRAY = 1 << 16
FEAT_SINGLE_MMAP = 1 << 0
ENTER_GETEVENTS = 1 << 0
OFF_SQ_RING = 0
OFF_SQES = 0x10000000

OP_READ = 22
OP_WRITE = 23
OP_URING_CMD = 46

SQE_SIZE = 128  # with SETUP_SQE128: 64 bytes of SQE, 64 more of command area
# io_uring_params: sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features,
# wq_fd, resv[3], then struct io_sqring_offsets and struct io_cqring_offsets (10 x u32 + u64 each).
PARAMS = struct.Struct("<10I 7I I Q 8I Q")
assert PARAMS.size == 120
# A whole SQE128 as one struct, so that one pack_into fills (and zeroes) it: opcode, flags,
# ioprio, fd, off, addr, len, rw_flags, user_data, then the rest zero (for READ and WRITE).
SQE_RW = struct.Struct("<BBHiQQIIQ88x")
CQE = struct.Struct("<Qi4x")  # user_data, res, flags
assert SQE_RW.size == SQE_SIZE


def command_sqe(cmd_format: str) -> struct.Struct:
    """The SQE128 layout of a URING_CMD whose command area holds `cmd_format`: opcode, flags,
    ioprio, fd, cmd_op, addr, len, uring_cmd_flags, user_data, then the command's fields."""
    layout = struct.Struct(f"<BBHiI4xQIIQ8x{cmd_format}")
    return struct.Struct(f"<BBHiI4xQIIQ8x{cmd_format}{SQE_SIZE - layout.size}x")


# io_uring_enter is called once per request or batch: a private handle on syscall() without
# argtypes, since converting seven arguments through argtypes cost 0.6 us per call here (1.0
# against 0.4). Its arguments are small ints (fd, counts, flags, NULL), which ctypes passes as
# C ints and libffi widens to the registers syscall() reads as longs.
_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


class Ring:
    """One io_uring instance of `entries` submission slots (a power of two is used as is)."""

    def __init__(self, entries: int) -> None:
        params = bytearray(PARAMS.size)
        struct.pack_into("<III", params, 0, 0, 0, SETUP_SQE128 | SETUP_SINGLE_ISSUER
                         | SETUP_DEFER_TASKRUN | SETUP_NO_SQARRAY)
        address = ctypes.addressof(ctypes.c_char.from_buffer(params))
        self.fd = libc.syscall("io_uring_setup", entries, address)
        self._enter = libc.syscall_number("io_uring_enter")
        try:
            self._map(PARAMS.unpack(params))
        except BaseException:
            os.close(self.fd)
            raise

    def _map(self, p: tuple) -> None:
        sq_entries, cq_entries, _, _, _, features = p[:6]
        sq_off, cq_off = p[10:19], p[19:28]
        if not features & FEAT_SINGLE_MMAP:
            raise OSError(errno.EOPNOTSUPP, "io_uring without IORING_FEAT_SINGLE_MMAP (Linux < 5.4)")
        size = max(sq_off[6] + sq_entries * 4, cq_off[5] + cq_entries * CQE.size)
        self._rings = mmap.mmap(self.fd, size, mmap.MAP_SHARED | mmap.MAP_POPULATE,
                                mmap.PROT_READ | mmap.PROT_WRITE, offset=OFF_SQ_RING)
        self._sqes = mmap.mmap(self.fd, sq_entries * SQE_SIZE, mmap.MAP_SHARED | mmap.MAP_POPULATE,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=OFF_SQES)
        self._u32 = memoryview(self._rings).cast("I")
        self._sq_tail_at, self._sq_mask = sq_off[1] // 4, self._u32[sq_off[2] // 4]
        self._cq_head_at, self._cq_tail_at = cq_off[0] // 4, cq_off[1] // 4
        self._cq_mask = self._u32[cq_off[2] // 4]
        self._cqes_at = cq_off[5]
        self.sq_entries = sq_entries
        self._sq_tail = self._u32[self._sq_tail_at]
        self._pending = 0  # SQEs written since the last submit

    def close(self) -> None:
        """Unmap the rings and close the instance (outstanding commands are cancelled)."""
        self._u32.release()
        self._rings.close()
        self._sqes.close()
        os.close(self.fd)

    def push(self, layout: struct.Struct, *fields: int) -> None:
        """Queue one SQE packed with `layout` (SQE_RW or a command_sqe); the next
        submit_and_wait sends it."""
        if self._pending >= self.sq_entries:
            self.submit_and_wait(0)
        layout.pack_into(self._sqes, (self._sq_tail & self._sq_mask) * SQE_SIZE, *fields)
        self._sq_tail = (self._sq_tail + 1) & 0xFFFFFFFF
        self._pending += 1

    def poll(self, ns: int) -> None:
        """Submit, then look for a completion without sleeping for up to `ns` nanoseconds (each
        look is an io_uring_enter that runs the kernel's deferred work)."""
        self.submit_and_wait(0)
        deadline = time.monotonic_ns() + ns
        while not self.ready() and time.monotonic_ns() < deadline:
            self.submit_and_wait(0)

    def submit_and_wait_idle(self) -> None:
        """Hand the queued SQEs to the kernel; wait for a completion only when none is ready."""
        self.submit_and_wait(0 if self.ready() else 1)

    def submit_and_wait(self, wait: int) -> None:
        """Hand the queued SQEs to the kernel and wait until `wait` completions are ready."""
        submit, self._pending = self._pending, 0
        self._u32[self._sq_tail_at] = self._sq_tail
        while True:
            done = _syscall(self._enter, self.fd, submit, wait, ENTER_GETEVENTS, 0, 0)
            if done >= 0:
                return
            err = ctypes.get_errno()
            if err != errno.EINTR:  # a signal: what was submitted stays submitted
                raise OSError(err, f"io_uring_enter: {os.strerror(err)}")
            submit = 0

    def ready(self) -> bool:
        """Whether a completion is waiting to be consumed."""
        return self._u32[self._cq_head_at] != self._u32[self._cq_tail_at]

    def completions(self, most: int) -> list[tuple[int, int]]:
        """(user_data, res) of up to `most` ready completions, consumed."""
        u32 = self._u32
        head, tail = u32[self._cq_head_at], u32[self._cq_tail_at]
        if head == tail:
            return []
        if (tail - head) & 0xFFFFFFFF > most:
            tail = (head + most) & 0xFFFFFFFF
        mask, base, rings = self._cq_mask, self._cqes_at, self._rings
        unpack = CQE.unpack_from
        out = []
        while head != tail:
            out.append(unpack(rings, base + (head & mask) * CQE.size))
            head = (head + 1) & 0xFFFFFFFF
        u32[self._cq_head_at] = head
        return out


