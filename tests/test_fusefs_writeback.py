"""bench.fusefs.writeback: page-cache writebacks go to a buffered twin of an fh opened O_DIRECT
or O_APPEND, opened on the first one and closed with the fh."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from bench.fusefs.writeback import WritebackFds, open_twin


@pytest.fixture
def fds() -> WritebackFds:
    return WritebackFds()


def test_a_twin_is_buffered_and_writes_in_place_but_keeps_the_clients_sync_flags(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a" * 100)
    flags = os.O_RDWR | os.O_DIRECT | os.O_APPEND | os.O_SYNC
    fh = os.open(tmp_path / "f", flags)
    # What a create hands over too: none of it may reach the twin (O_TRUNC would empty the file).
    twin = open_twin(fh, flags | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOFOLLOW)
    try:
        got = fcntl.fcntl(twin, fcntl.F_GETFL)
        assert got & (os.O_DIRECT | os.O_APPEND | os.O_ACCMODE) == os.O_WRONLY
        assert got & os.O_SYNC == os.O_SYNC
        assert fcntl.fcntl(twin, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        os.pwrite(twin, b"b", 10)
        assert (tmp_path / "f").read_bytes() == b"a" * 10 + b"b" + b"a" * 89
    finally:
        os.close(twin)
        os.close(fh)


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
    fds = WritebackFds(lambda fh, flags: opened.append(fh) or fh)
    fds.opened(7, os.O_WRONLY | os.O_DIRECT)
    fds.closing(7)
    assert opened == []


def test_a_release_racing_a_writeback_leaves_the_writeback_its_fh() -> None:
    opened: list[int] = []
    fds = WritebackFds(lambda fh, flags: opened.append(fh) or 99)
    fds.opened(7, os.O_WRONLY | os.O_APPEND)
    got: list[int] = []
    writeback = threading.Thread(target=lambda: got.append(fds.fd(7)))
    with fds._lock:  # the writeback saw fh 7 waiting for a twin; the RELEASE gets the lock first
        writeback.start()
        time.sleep(0.1)
        fds._pending.pop(7)
    writeback.join()
    assert got == [7] and opened == []


def test_writebacks_racing_the_twins_opening_all_get_the_twin() -> None:
    def slow_reopen(fh: int, flags: int) -> int:
        time.sleep(0.1)
        return 99

    fds = WritebackFds(slow_reopen)
    fds.opened(7, os.O_WRONLY | os.O_DIRECT)
    got: list[int] = []
    writebacks = [threading.Thread(target=lambda: got.append(fds.fd(7))) for _ in range(4)]
    for writeback in writebacks:
        writeback.start()
        time.sleep(0.02)
    for writeback in writebacks:
        writeback.join()
    assert got == [99] * 4
