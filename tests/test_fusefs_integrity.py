"""Data integrity through the built-in FUSE server: a seeded random workload compared with the
same operations on a native file, and concurrent readers and writers."""

from __future__ import annotations

import mmap
import os
import random
import threading
from pathlib import Path

import pytest
from fusefs_helpers import (
    EVERY_MODE,
    MODES,
    every_mode_params,
    mode_params,
    mount,
    needs_root,
)

pytestmark = [pytest.mark.integration, needs_root]

SIZE = 1 << 20


def _apply(rng: random.Random, fds: list[int], names: list[Path]) -> None:
    """One random operation applied identically to every (fd, path) pair."""
    op = rng.random()
    if op < 0.45:
        offset, data = rng.randrange(SIZE), rng.randbytes(rng.randrange(1, 65536))
        assert len({os.pwrite(fd, data, offset) for fd in fds}) == 1
    elif op < 0.9:
        offset, size = rng.randrange(SIZE + 4096), rng.randrange(1, 131072)
        results = [os.pread(fd, size, offset) for fd in fds]
        assert results[0] == results[1], f"pread({size}, {offset}) differs"
    elif op < 0.96:
        length = rng.randrange(SIZE)
        for fd in fds:
            os.ftruncate(fd, length)
    else:
        length = rng.randrange(SIZE)
        for path in names:
            os.truncate(path, length)


@pytest.mark.parametrize("mode", every_mode_params())
def test_random_workload_matches_native(tmp_path: Path, mode: str) -> None:
    rng = random.Random(20261125)
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    with mount(tmp_path, *EVERY_MODE[mode]) as fs:
        names = ["f0", "f1"]
        for step in range(3000):
            if step % 500 == 0:  # rename between rounds, then reopen under the new name
                old, new = names[0], names[1]
                if (fs.path / old).exists():
                    os.rename(fs.path / old, fs.path / new)
                    os.rename(native_dir / old, native_dir / new)
                names.reverse()
                paths = [fs.path / names[1], native_dir / names[1]]
                fds = [os.open(p, os.O_CREAT | os.O_RDWR, 0o644) for p in paths]
            _apply(rng, fds, paths)
            if step % 500 == 499:
                for fd in fds:
                    os.close(fd)
        assert (fs.path / names[1]).read_bytes() == (native_dir / names[1]).read_bytes()
        assert (fs.source / names[1]).read_bytes() == (native_dir / names[1]).read_bytes()


@pytest.mark.parametrize("mode", [p for p in mode_params() if p.id in ("plain", "pt-keep", "plain-uring")])
def test_concurrent_readers_and_writers(tmp_path: Path, mode: str) -> None:
    """Writers read back their own 4k blocks while readers read the whole file.

    Every file is opened before the threads start: an open without FOPEN_KEEP_CACHE makes the
    kernel drop the file's clean page cache, and a write-through of a whole page unlocks the
    page, new data in it, before the daemon has the WRITE. An open in that window drops the
    page, a reader's READ refills it with the backing file's old bytes, and the writer reads
    those back. That is the kernel's race (it failed about one run in 30 with any server
    loop), not the daemon's: this test keeps opens out of the concurrent phase."""
    chunk, writers = 65536, 4
    with mount(tmp_path, *MODES[mode]) as fs:
        path = fs.path / "shared"
        path.write_bytes(bytes(chunk * writers))
        errors: list[str] = []

        def writer(index: int, fd: int) -> None:
            rng = random.Random(index)
            for _ in range(200):
                block = bytes([rng.randrange(1, 256)]) * 4096
                offset = index * chunk + rng.randrange(chunk // 4096) * 4096
                os.pwrite(fd, block, offset)
                got = os.pread(fd, 4096, offset)
                if got != block:
                    errors.append(f"writer {index}: read back differs at {offset}")

        def reader(fd: int) -> None:
            for _ in range(200):
                data = os.pread(fd, chunk * writers, 0)
                if len(data) != chunk * writers:
                    errors.append(f"short read {len(data)}")

        for _ in range(5):  # the races this guards against show in about one round in ten
            fds = [os.open(path, os.O_RDWR) for _ in range(writers)]
            fds += [os.open(path, os.O_RDONLY) for _ in range(2)]
            threads = [threading.Thread(target=writer, args=(i, fds[i])) for i in range(writers)]
            threads += [threading.Thread(target=reader, args=(fd,)) for fd in fds[writers:]]
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                for fd in fds:
                    os.close(fd)
            assert not errors, errors[:5]
        assert path.read_bytes() == (fs.source / "shared").read_bytes()


@pytest.mark.parametrize("args", [["--batch", "32"], ["--batch", "4"], ["--batch", "1"],
                                  ["--transport", "uring", "--ring-depth", "4"],
                                  ["--transport", "uring", "--batch", "1"],
                                  ["--transport", "uring", "--ring-poll", "50us"]],
                         ids=["batch-32", "batch-4", "batch-1", "uring-depth-4", "uring-batch-1", "uring-poll"])
def test_concurrent_direct_reads_return_their_own_bytes(tmp_path: Path, args: list[str]) -> None:
    """Plain mode keeps queued READs in flight (AIO over /dev/fuse, the ring's own READs over
    io_uring), each in its own reply buffer: every reply must carry the bytes of its own offset
    (a mix-up would hand a reader another request's data). 16 readers against 4 slots (or ring
    entries) also runs out of them."""
    blocks = 2048
    data = random.Random(7).randbytes(blocks * 4096)
    with mount(tmp_path, "--mode", "plain", *args, files={"f": data}) as fs:
        errors: list[str] = []

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            buf = mmap.mmap(-1, 65536)
            fd = os.open(fs.path / "f", os.O_RDONLY | os.O_DIRECT)
            try:
                for _ in range(300):
                    block, count = rng.randrange(blocks - 16), rng.choice((1, 1, 2, 16))
                    got = os.preadv(fd, [memoryview(buf)[: count * 4096]], block * 4096)
                    if buf[:got] != data[block * 4096 : block * 4096 + count * 4096]:
                        errors.append(f"block {block} x{count} differs")
            finally:
                os.close(fd)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        stats = fs.wait_stats(lambda s: s["requests"]["READ"] >= 16 * 300)
        assert stats["errors_total"] == 0


def _backing_fds(pid: int, source: Path) -> list[int]:
    """The open flags of each fd the daemon `pid` holds on `source`."""
    flags = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(source):
                flags.append(int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8))
        except FileNotFoundError:
            pass  # closed meanwhile
    return flags


@pytest.mark.parametrize("mode", every_mode_params(shared_mmap=True))
@pytest.mark.parametrize("flag", ["O_DIRECT", "O_APPEND"])
def test_shared_mmap_writes_reach_a_file_opened_direct_or_append(tmp_path: Path, mode: str, flag: str) -> None:
    """The kernel writes a shared mapping's dirty pages back through the file's fh, the last
    one cut at end of file: an O_DIRECT backing fd refused it (msync: EINVAL), an O_APPEND one
    put it at end of file. The tail page is where both showed."""
    data = bytearray(random.Random(3).randbytes(10000))
    with mount(tmp_path, *EVERY_MODE[mode], files={"f": bytes(data)}) as fs:
        fd = os.open(fs.path / "f", os.O_RDWR | getattr(os, flag))
        try:
            with mmap.mmap(fd, len(data)) as mapped:
                for offset in (100, 9000):  # a whole page, then the tail
                    mapped[offset : offset + 10] = data[offset : offset + 10] = b"x" * 10
                mapped.flush()
        finally:
            os.close(fd)
        assert (fs.source / "f").read_bytes() == data
        assert (fs.path / "f").read_bytes() == data


@pytest.mark.parametrize("args", [[], ["--writeback-cache"]], ids=["plain", "plain-writeback"])
def test_direct_writes_keep_going_to_an_o_direct_backing_fd(tmp_path: Path, args: list[str]) -> None:
    """Plain mode: a client's direct writes reach the disk with O_DIRECT (the figures of direct
    I/O stay honest); only the page cache's writebacks go through a buffered twin, which is
    opened on the first one and closed with the file."""
    with mount(tmp_path, "--mode", "plain", *args, files={"f": bytes(3 * 4096 + 100)}) as fs:
        source = fs.source / "f"
        fd = os.open(fs.path / "f", os.O_RDWR | os.O_DIRECT)
        try:
            block = mmap.mmap(-1, 4096)
            block[:] = b"d" * 4096
            assert os.pwrite(fd, block, 4096) == 4096
            assert [flags & os.O_DIRECT for flags in _backing_fds(fs.pid, source)] == [os.O_DIRECT]
            with mmap.mmap(fd, 3 * 4096 + 100) as mapped:
                mapped[-50:] = b"m" * 50
                mapped.flush()
            assert sorted(flags & os.O_DIRECT for flags in _backing_fds(fs.pid, source)) == [0, os.O_DIRECT]
            assert os.pwrite(fd, block, 0) == 4096
        finally:
            os.close(fd)
        assert source.read_bytes() == b"d" * 8192 + bytes(4096) + bytes(50) + b"m" * 50
        fs.wait_stats(lambda s: s["requests"].get("RELEASE", 0) >= 1)
        assert _backing_fds(fs.pid, source) == []
