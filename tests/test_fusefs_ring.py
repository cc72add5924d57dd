"""bench.fusefs.ring: an entry's request laid out as /dev/fuse delivers it, and the payload
size the kernel requires (the serving itself: tests/test_fusefs_posix.py and others mount
over io_uring)."""

from __future__ import annotations

import errno
import os
import struct

import pytest
from fusefs_helpers import request

from bench.fusefs import protocol as p
from bench.fusefs import ring
from bench.fusefs.dispatch import Dispatcher
from bench.fusefs.operations import Operations
from bench.fusefs.protocol import Opcode
from bench.fusefs.stats import Counters


def _entry(opcode: int, op_in: bytes, payload: bytes) -> tuple[bytearray, memoryview, int]:
    """One ring entry's header and payload as the kernel fills them."""
    dev = request(opcode, op_in + payload)
    headers = bytearray(ring.HEADER_SIZE)
    headers[: p.IN_HEADER_SIZE] = dev[: p.IN_HEADER_SIZE]
    headers[ring.OP_IN : ring.OP_IN + len(op_in)] = op_in
    struct.pack_into("<I", headers, ring.PAYLOAD_SZ, len(payload))
    buffer = bytearray(8192)
    buffer[: len(payload)] = payload
    return headers, memoryview(buffer), len(dev)


def test_a_request_is_reassembled_as_dev_fuse_delivers_it() -> None:
    op_in, payload = p.MKDIR_IN.pack(0o755, 0o22), b"dir\0"
    headers, buffer, length = _entry(Opcode.MKDIR, op_in, payload)
    assert ring.device_message(headers, 0, buffer, length) == request(Opcode.MKDIR, op_in + payload)


def test_a_name_only_request_has_an_empty_argument_struct() -> None:
    headers, buffer, length = _entry(Opcode.LOOKUP, b"", b"name\0")
    assert ring.device_message(headers, 0, buffer, length) == request(Opcode.LOOKUP, b"name\0")


def test_sizes_that_do_not_add_up_are_refused() -> None:
    headers, buffer, length = _entry(Opcode.LOOKUP, b"", b"name\0")
    assert ring.device_message(headers, 0, buffer, length - 10) is None  # struct of negative size
    assert ring.device_message(headers, 0, buffer, length + ring.OP_IN_SIZE + 1) is None  # beyond op_in
    assert ring.device_message(headers, 0, buffer[:2], length) is None  # payload beyond the buffer


def test_payload_size_is_the_largest_request() -> None:
    assert ring.payload_size(1 << 20, 256) == 1 << 20
    assert ring.payload_size(4096, 1) == p.MIN_READ_BUFFER


def _queue(session: int = -1) -> ring.Queue:
    return ring.Queue(session, 0, 2, ring.payload_size(8192, 2), Counters(), Dispatcher(Operations()),
                      fast=False, batch=True, writeback_fd=lambda fd: fd)


def test_a_queue_that_cannot_make_its_ring_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """io_uring refused (io_uring_disabled, an unknown syscall): the mount must fail with the
    reason instead of waiting for a queue that never registers."""
    def refused(entries: int) -> None:
        raise OSError(errno.EPERM, "io_uring_setup: Operation not permitted")

    monkeypatch.setattr(ring.uring, "Ring", refused)
    queue = _queue()
    queue.serve()
    assert queue.registered.is_set() and "queue 0" in queue.failure and "not permitted" in queue.failure


def test_a_refused_registration_is_a_failure_not_a_fallback() -> None:
    """A REGISTER the kernel refuses (here on a /dev/fuse fd with no mount behind it) completes
    at once with an error; the queue reports it (the kernel would otherwise quietly serve the
    connection over /dev/fuse)."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        queue = _queue(fd)
        queue.serve()
    finally:
        os.close(fd)
    assert queue.registered.is_set() and queue.failure.startswith("FUSE_IO_URING_CMD_REGISTER on queue 0: ")
