"""bench.fusefs.uring: SQE layouts as include/uapi/linux/io_uring.h lays them out, and a real
ring reading and writing a file (io_uring needs no privilege)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.fusefs import uring
from bench.fusefs.buffers import address, io_buffer


def test_sqe_layouts_fill_the_whole_128_bytes() -> None:
    assert uring.SQE_RW.size == uring.SQE_SIZE
    layout = uring.command_sqe("QQH6x")
    assert layout.size == uring.SQE_SIZE
    sqe = layout.pack(uring.OP_URING_CMD, 0, 0, 7, 2, 0x1000, 2, 0, 99, 0, 1234, 3)
    assert sqe[0] == uring.OP_URING_CMD and int.from_bytes(sqe[4:8], "little") == 7  # opcode, fd
    assert int.from_bytes(sqe[8:12], "little") == 2  # cmd_op, where `off` is for READ/WRITE
    assert int.from_bytes(sqe[16:24], "little") == 0x1000 and int.from_bytes(sqe[24:28], "little") == 2
    assert int.from_bytes(sqe[32:40], "little") == 99  # user_data
    assert sqe[40:48] == bytes(8)  # buf_index, personality, file_index
    # struct io_uring_sqe.cmd starts at byte 48: flags, commit_id, qid
    assert int.from_bytes(sqe[56:64], "little") == 1234 and int.from_bytes(sqe[64:66], "little") == 3
    assert sqe[66:] == bytes(62)


def test_a_ring_reads_and_writes_a_file(tmp_path: Path) -> None:
    ring = uring.Ring(4)
    path = tmp_path / "f"
    path.write_bytes(b"x" * 8192)
    fd = os.open(path, os.O_RDWR)
    buf = io_buffer(8192)
    try:
        buf[:5] = b"hello"
        ring.push(uring.SQE_RW, uring.OP_WRITE, 0, 0, fd, 4096, address(buf), 5, 0, 1)
        ring.submit_and_wait(1)
        assert ring.completions(8) == [(1, 5)]
        for n in range(6):  # more SQEs than slots: push submits what is queued when full
            ring.push(uring.SQE_RW, uring.OP_READ, 0, 0, fd, 4096, address(buf) + 4096, 8, 0, 10 + n)
        ring.submit_and_wait(6)
        done = ring.completions(4)  # at most what is asked, the rest stays
        assert len(done) == 4 and ring.ready()
        done += ring.completions(8)
        assert sorted(done) == [(10 + n, 8) for n in range(6)] and not ring.ready()
        assert buf[4096:4104] == b"helloxxx"
        ring.push(uring.SQE_RW, uring.OP_READ, 0, 0, -1, 0, address(buf), 8, 0, 42)
        ring.submit_and_wait(1)
        assert ring.completions(8) == [(42, -9)]  # EBADF comes back in the completion
    finally:
        os.close(fd)
        ring.close()


def test_a_refused_setup_raises_with_the_syscall_named() -> None:
    with pytest.raises(OSError, match="io_uring_setup"):
        uring.Ring(0)
