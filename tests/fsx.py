"""A compact, seeded file-system exerciser in the spirit of xfstests' fsx (not installed here).

Random mixed operations on one file: buffered writes and reads, direct (O_DIRECT) writes and
reads of whole blocks from page-aligned buffers, truncates, fallocate in each mode the file
system takes, reads and writes through a shared mmap (msync'd or not), fsync, and reopens (the
buffered fd now and then with O_APPEND). Every read is checked against a model of the file's
bytes kept in memory, the whole file every `check_every` operations and at the end; `verify`
compares any path (the backing file) with the model. The same seed gives the same operations.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
from collections import Counter, deque
from pathlib import Path

from bench.fusefs import libc

BLOCK = 4096  # direct I/O offsets, lengths and buffers are whole blocks
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10
FALLOCATE_MODES = (0, KEEP_SIZE, PUNCH_HOLE | KEEP_SIZE, ZERO_RANGE, ZERO_RANGE | KEEP_SIZE)


class Mismatch(AssertionError):
    """The file's bytes differ from the model's."""


class Exerciser:
    """Operations on `path` checked against a model; `run(ops)` them, then `close()`."""

    def __init__(self, path: Path, seed: int, *, max_size: int = 256 << 10, use_mmap: bool = True,
                 direct: bool = True, check_every: int = 50) -> None:
        self.path, self.seed, self.max_size = path, seed, max_size
        self.use_mmap, self.direct, self.check_every = use_mmap, direct, check_every
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.done: Counter[str] = Counter()
        self.fallocate_modes = list(FALLOCATE_MODES)  # a mode the file system refuses is dropped
        self.history: deque[str] = deque(maxlen=12)
        self.block = mmap.mmap(-1, 4 * BLOCK)  # page-aligned: O_DIRECT takes it
        self.append = False
        self.fd = self.dfd = -1
        path.unlink(missing_ok=True)
        self._open()

    def _open(self) -> None:
        self.append = self.rng.random() < 0.25
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | (os.O_APPEND if self.append else 0), 0o644)
        self.dfd = os.open(self.path, os.O_RDWR | (os.O_DIRECT if self.direct else 0))

    def close(self) -> None:
        """Close the fds (the data stays)."""
        for fd in (self.fd, self.dfd):
            os.close(fd)
        self.fd = self.dfd = -1
        self.block.close()

    def run(self, ops: int) -> Counter[str]:
        """Do `ops` random operations, checking as it goes; how many of each kind were done."""
        kinds = [("write", 8), ("read", 6), ("truncate", 2), ("fallocate", 2), ("fsync", 1), ("reopen", 1)]
        kinds += [("dwrite", 5), ("dread", 4)] if self.direct else []
        kinds += [("mapwrite", 4), ("mapread", 3)] if self.use_mmap else []
        names, weights = zip(*kinds)
        for index in range(ops):
            kind = self.rng.choices(names, weights)[0]
            try:
                getattr(self, f"_{kind}")()
            except (Mismatch, OSError) as exc:
                raise Mismatch(f"{self.path}, seed {self.seed}, operation {index} ({kind}): {exc}\n"
                               f"last operations:\n  " + "\n  ".join(self.history)) from exc
            self.done[kind] += 1
            if (index + 1) % self.check_every == 0 or index + 1 == ops:
                self._check_all()
        return self.done

    # -- the model ---------------------------------------------------------------------------

    def _put(self, offset: int, data: bytes) -> None:
        self._resize(max(len(self.model), offset))
        self.model[offset : offset + len(data)] = data

    def _resize(self, size: int) -> None:
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    def _zero(self, offset: int, end: int) -> None:
        end = min(end, len(self.model))
        if end > offset:
            self.model[offset:end] = bytes(end - offset)

    def _expect(self, what: str, offset: int, got: bytes, size: int) -> None:
        want = bytes(self.model[offset : offset + size])
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise Mismatch(f"{what} at {offset}+{size}: {len(got)} bytes, expected {len(want)}; "
                           f"first difference at byte {offset + first} (file size {len(self.model)})")

    def _check_all(self) -> None:
        self._expect("whole-file read", 0, os.pread(self.fd, self.max_size + BLOCK, 0), self.max_size + BLOCK)
        if os.fstat(self.fd).st_size != len(self.model):
            raise Mismatch(f"size {os.fstat(self.fd).st_size}, expected {len(self.model)}")

    def verify(self, path: Path) -> None:
        """`path` (the file as another view shows it) holds the model's bytes."""
        data = path.read_bytes()
        if data != self.model:
            self.history.append(f"verify {path}")
            self._expect(f"{path}", 0, data, len(data) + len(self.model))

    # -- random extents ----------------------------------------------------------------------

    def _extent(self, largest: int) -> tuple[int, int]:
        offset = self.rng.randrange(self.max_size)
        return offset, self.rng.randint(1, min(largest, self.max_size - offset))

    def _blocks(self) -> tuple[int, int]:
        offset = self.rng.randrange(self.max_size // BLOCK) * BLOCK
        return offset, BLOCK * self.rng.randint(1, min(4, (self.max_size - offset) // BLOCK))

    def _log(self, text: str) -> None:
        self.history.append(f"{text} (size {len(self.model)})")

    # -- operations --------------------------------------------------------------------------

    def _write(self) -> None:
        offset, size = self._extent(16 << 10)
        if self.append:  # O_APPEND: every write lands at the end, pwrite's offset or not
            offset, size = len(self.model), min(size, self.max_size - len(self.model))
        data = self.rng.randbytes(size)
        self._log(f"write {offset}+{size}{' (append)' if self.append else ''}")
        if os.pwrite(self.fd, data, offset) != size:
            raise Mismatch(f"short write at {offset}+{size}")
        self._put(offset, data)

    def _read(self) -> None:
        offset, size = self.rng.randrange(self.max_size + BLOCK), self.rng.randint(1, 32 << 10)
        self._log(f"read {offset}+{size}")
        self._expect("read", offset, os.pread(self.fd, size, offset), size)

    def _dwrite(self) -> None:
        offset, size = self._blocks()
        data = self.rng.randbytes(size)
        self._log(f"direct write {offset}+{size}")
        self.block[:size] = data
        if os.pwrite(self.dfd, memoryview(self.block)[:size], offset) != size:
            raise Mismatch(f"short direct write at {offset}+{size}")
        self._put(offset, data)

    def _dread(self) -> None:
        offset, size = self._blocks()
        self._log(f"direct read {offset}+{size}")
        got = os.preadv(self.dfd, [memoryview(self.block)[:size]], offset)
        self._expect("direct read", offset, self.block[:got], size)

    def _truncate(self) -> None:
        size = self.rng.randrange(self.max_size + 1)
        self._log(f"truncate {size}")
        os.ftruncate(self.rng.choice((self.fd, self.dfd)), size)
        self._resize(size)

    def _fallocate(self) -> None:
        if not self.fallocate_modes:
            return
        mode = self.rng.choice(self.fallocate_modes)
        offset, size = self._extent(64 << 10)
        self._log(f"fallocate mode {mode:#x} {offset}+{size}")
        try:
            libc.fallocate(self.dfd, mode, offset, size)
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            self.fallocate_modes.remove(mode)
            return
        if mode & (PUNCH_HOLE | ZERO_RANGE):
            self._zero(offset, offset + size)
        if not mode & KEEP_SIZE:
            self._resize(max(len(self.model), offset + size))

    def _fsync(self) -> None:
        self._log("fsync")
        os.fsync(self.rng.choice((self.fd, self.dfd)))

    def _reopen(self) -> None:
        os.close(self.fd)
        os.close(self.dfd)
        self._open()
        self._log(f"reopen{' (buffered fd O_APPEND)' if self.append else ''}")

    def _mapwrite(self) -> None:
        offset, size = self._extent(16 << 10)
        fd, sync = self.rng.choice((self.fd, self.dfd)), self.rng.random() < 0.5
        self._log(f"mmap write {offset}+{size} through the {'direct' if fd == self.dfd else 'buffered'} fd"
                  f"{', msync' if sync else ''}")
        if offset + size > len(self.model):  # a mapping writes only within the file
            os.ftruncate(fd, offset + size)
            self._resize(offset + size)
        data = self.rng.randbytes(size)
        with mmap.mmap(fd, len(self.model)) as mapped:
            mapped[offset : offset + size] = data
            if sync:
                mapped.flush()
        self._put(offset, data)

    def _mapread(self) -> None:
        if not self.model:
            return
        offset = self.rng.randrange(len(self.model))
        size = self.rng.randint(1, min(32 << 10, len(self.model) - offset))
        self._log(f"mmap read {offset}+{size}")
        with mmap.mmap(self.rng.choice((self.fd, self.dfd)), len(self.model), prot=mmap.PROT_READ) as mapped:
            self._expect("mmap read", offset, mapped[offset : offset + size], size)
