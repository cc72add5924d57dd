"""bench.fusefs.writeback: page-cache writebacks go to a buffered twin of an fh opened O_DIRECT
or O_APPEND, opened on the first one and closed with the fh."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from bench.fusefs.writeback import WritebackFds


@pytest.fixture
def fds() -> WritebackFds:
    return WritebackFds(lambda fh: os.open(f"/proc/self/fd/{fh}", os.O_WRONLY | os.O_CLOEXEC))


def test_an_ordinary_fh_takes_its_own_writebacks(tmp_path: Path, fds: WritebackFds) -> None:
    fh = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    fds.opened(fh, os.O_RDWR)
    assert fds.fd(fh) == fh
    fds.closing(fh)
    os.close(fh)


def test_an_append_fh_gets_a_twin_that_writes_where_asked(tmp_path: Path, fds: WritebackFds) -> None:
    (tmp_path / "f").write_bytes(b"a" * 100)
    flags = os.O_RDWR | os.O_APPEND
    fh = os.open(tmp_path / "f", flags)
    fds.opened(fh, flags)
    twin = fds.fd(fh)
    assert twin != fh and fds.fd(fh) == twin  # opened once
    assert fcntl.fcntl(twin, fcntl.F_GETFL) & (os.O_APPEND | os.O_DIRECT | os.O_ACCMODE) == os.O_WRONLY
    os.pwrite(twin, b"b", 10)
    assert (tmp_path / "f").read_bytes() == b"a" * 10 + b"b" + b"a" * 89
    fds.closing(fh)
    os.close(fh)
    with pytest.raises(OSError):
        os.fstat(twin)
    assert fds.fd(fh) == fh  # a later fh with that number starts afresh


def test_a_twin_is_only_opened_when_a_writeback_comes(tmp_path: Path) -> None:
    opened: list[int] = []
    fds = WritebackFds(lambda fh: opened.append(fh) or fh)
    fds.opened(7, os.O_WRONLY | os.O_DIRECT)
    fds.closing(7)
    assert opened == []
