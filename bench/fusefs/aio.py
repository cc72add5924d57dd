"""Linux native AIO (io_setup / io_submit / io_getevents) through ctypes, for batched reads.

Why: a plain-mode READ answered with one pread(2) each costs one virtio kick (a VM exit) per
request; perf showed the kick (iowrite16) and interrupt handling, not Python, dominating the
daemon's CPU at QD32. io_submit of a batch plugs the block queue and kicks once per batch,
which is what fio does natively with libaio at QD32.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from bench.fusefs.buffers import address
from bench.fusefs.libc import check, libc, syscall_number

IOCB_CMD_PREAD = 0
IOCB_FLAG_RESFD = 1 << 0
# struct iocb: aio_data, aio_key, aio_rw_flags, aio_lio_opcode, aio_reqprio, aio_fildes, aio_buf,
# aio_nbytes, aio_offset, aio_reserved2, aio_flags, aio_resfd
IOCB = struct.Struct("<QIIHhIQQqQII")
EVENT = struct.Struct("<QQqq")  # data, obj, res, res2
assert IOCB.size == 64 and EVENT.size == 32

_syscall = libc.syscall  # called directly on the hot path: no name lookup per call


class Batch:
    """Up to `slots` preads in flight: submitted with one io_submit per batch, each completion
    also signalled on `eventfd` (IOCB_FLAG_RESFD) so a worker can poll for requests and
    completions at once."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._submit_nr = syscall_number("io_submit")
        self._getevents_nr = syscall_number("io_getevents")
        self._destroy_nr = syscall_number("io_destroy")
        ctx = ctypes.c_ulong(0)
        check(_syscall(syscall_number("io_setup"), ctypes.c_long(slots), ctypes.byref(ctx)), "io_setup")
        self._ctx = ctx.value
        self.eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.iocbs = bytearray(IOCB.size * slots)
        base = address(self.iocbs)
        self._ptrs = (ctypes.c_void_p * slots)(*(base + IOCB.size * i for i in range(slots)))
        self.events = bytearray(EVENT.size * slots)
        self._ptrs_addr = ctypes.addressof(self._ptrs)
        self._events_addr = address(self.events)

    def prepare(self, index: int, tag: int, fd: int, buf: int, size: int, offset: int) -> None:
        """Fill iocb `index` of the next submission: read `size` bytes at `offset` into `buf`."""
        IOCB.pack_into(self.iocbs, index * IOCB.size, tag, 0, 0, IOCB_CMD_PREAD, 0, fd, buf, size,
                       offset, 0, IOCB_FLAG_RESFD, self.eventfd)

    def submit(self, count: int) -> int:
        """Submit the first `count` iocbs; returns how many the kernel took."""
        result = _syscall(self._submit_nr, ctypes.c_ulong(self._ctx), ctypes.c_long(count),
                          ctypes.c_void_p(self._ptrs_addr))
        return check(result, "io_submit")

    def reap(self, wait: int) -> int:
        """Collect finished reads into `events`, waiting for at least `wait` (0: none);
        returns how many. Clears the eventfd first: a completion posted after that sets it
        again, so polling it never misses one, and a clear eventfd means nothing finished
        since the last reap (which takes every event there is): no io_getevents then."""
        try:
            os.read(self.eventfd, 8)
        except BlockingIOError:
            if not wait:
                return 0
        while True:
            result = _syscall(self._getevents_nr, ctypes.c_ulong(self._ctx), ctypes.c_long(wait),
                              ctypes.c_long(self.slots), ctypes.c_void_p(self._events_addr), None)
            if result >= 0:
                return result
            err = ctypes.get_errno()
            if err != errno.EINTR:
                raise OSError(err, os.strerror(err))

    def close(self) -> None:
        """io_destroy (waits for requests still in flight)."""
        if self._ctx:
            _syscall(self._destroy_nr, ctypes.c_ulong(self._ctx))
            self._ctx = 0
            os.close(self.eventfd)
