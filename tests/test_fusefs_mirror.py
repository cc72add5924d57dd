"""bench.fusefs.mirror called directly, as the dispatch calls it, without a mount: lookup
references, READDIRPLUS references only for the entries that fit, files through fds as fh,
attribute changes and xattrs switched off."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bench.fusefs import protocol as p
from bench.fusefs import wire
from bench.fusefs.mirror import Mirror
from bench.fusefs.operations import Connection
from bench.fusefs.options import Options
from bench.fusefs.wire import AttrChanges, Context

CTX = Context(unique=1, nodeid=p.ROOT_ID, uid=0, gid=0, pid=1)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    (path / "hello").write_bytes(b"hello world\n")
    return path


def _mirror(source: Path, **options) -> Mirror:
    mirror = Mirror(Options(source=str(source), mountpoint=str(source.parent), **options))
    mirror.init(Connection(fd=-1, flags=0))
    return mirror


def test_lookup_references_until_forgotten(source: Path) -> None:
    mirror = _mirror(source)
    first = mirror.lookup(CTX, p.ROOT_ID, b"hello")
    again = mirror.lookup(CTX, p.ROOT_ID, b"hello")
    assert first.nodeid == again.nodeid != p.ROOT_ID
    assert first.attr.st_size == 12 and first.entry_timeout == 1.0
    mirror.forget(CTX, first.nodeid, 1)
    assert mirror.stats()["nodes"] == 2
    mirror.forget(CTX, first.nodeid, 1)
    assert mirror.stats() == {"nodes": 1, "open_dirs": 0, "backing_ids": 0, "backing_ids_peak": 0, "backing_opens_total": 0, "backing_closes_total": 0, "backing_open_ns_total": 0, "backing_close_ns_total": 0}
    with pytest.raises(OSError) as exc:
        mirror.lookup(CTX, p.ROOT_ID, b"nope")
    assert exc.value.errno == errno.ENOENT


def test_readdirplus_references_only_the_entries_that_fit(source: Path) -> None:
    names = {f"file{i:02d}".encode() for i in range(20)}
    for name in names:
        (source / os.fsdecode(name)).write_bytes(b"")
    (source / "hello").unlink()
    mirror = _mirror(source)
    fh = mirror.opendir(CTX, p.ROOT_ID, 0).fh
    seen, offset = [], 0
    while True:
        out = mirror.readdirplus(CTX, p.ROOT_ID, fh, offset, 4 * (p.ENTRY_OUT.size + 32))
        if not out.data:
            break
        assert len(out.nodeids) <= 4
        assert mirror.stats()["nodes"] == 1 + len(seen) + len(out.nodeids)  # one reference each
        seen += out.nodeids
        offset += len(out.data) // (p.ENTRY_OUT.size + 32)
    assert len(seen) == len(set(seen)) == 20 and mirror.stats()["open_dirs"] == 1
    mirror.releasedir(CTX, p.ROOT_ID, fh)
    for nodeid in seen:
        mirror.forget(CTX, nodeid, 1)
    assert mirror.stats() == {"nodes": 1, "open_dirs": 0, "backing_ids": 0, "backing_ids_peak": 0, "backing_opens_total": 0, "backing_closes_total": 0, "backing_open_ns_total": 0, "backing_close_ns_total": 0}


def test_files_through_fds_as_fh(source: Path) -> None:
    mirror = _mirror(source)
    entry, opened = mirror.create(CTX, p.ROOT_ID, b"new", 0o640, os.O_RDWR | os.O_EXCL)
    assert mirror.fh_is_fd and opened.flags & p.FOPEN_PARALLEL_DIRECT_WRITES
    assert mirror.write(CTX, entry.nodeid, opened.fh, 0, memoryview(b"abcdef")) == 6
    assert mirror.read(CTX, entry.nodeid, opened.fh, 2, 10) == b"cdef"
    mirror.fsync(CTX, entry.nodeid, opened.fh, datasync=True)
    mirror.flush(CTX, entry.nodeid, opened.fh)
    mirror.release(CTX, entry.nodeid, opened.fh)
    with pytest.raises(OSError):
        os.fstat(opened.fh)  # released: closed
    assert (source / "new").read_bytes() == b"abcdef"
    assert stat.S_IMODE((source / "new").stat().st_mode) == 0o640


def test_setattr_applies_only_the_changes(source: Path) -> None:
    mirror = _mirror(source)
    nodeid = mirror.lookup(CTX, p.ROOT_ID, b"hello").nodeid
    attr = mirror.setattr(CTX, nodeid, AttrChanges(0o100600, None, None, 5, 1_000_000_123, None), None)
    st = (source / "hello").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_size, st.st_atime_ns) == (0o600, 5, 1_000_000_123)
    assert attr.attr.st_size == 5
    mtime = st.st_mtime_ns
    mirror.setattr(CTX, nodeid, AttrChanges(None, None, None, None, None, wire.NOW), None)
    st = (source / "hello").stat()
    assert st.st_atime_ns == 1_000_000_123 and st.st_mtime_ns >= mtime


def test_names(source: Path) -> None:
    mirror = _mirror(source)
    mirror.mkdir(CTX, p.ROOT_ID, b"dir", 0o750)
    fifo = mirror.mknod(CTX, p.ROOT_ID, b"fifo", stat.S_IFIFO | 0o644, 0)
    assert stat.S_ISFIFO(fifo.attr.st_mode)
    link = mirror.symlink(CTX, p.ROOT_ID, b"soft", b"hello")
    assert mirror.readlink(CTX, link.nodeid) == b"hello"
    mirror.rename(CTX, p.ROOT_ID, b"hello", p.ROOT_ID, b"renamed", 0)
    mirror.unlink(CTX, p.ROOT_ID, b"fifo")
    mirror.rmdir(CTX, p.ROOT_ID, b"dir")
    assert sorted(os.listdir(source)) == ["renamed", "soft"]
    assert mirror.statfs(CTX, p.ROOT_ID).f_bsize == os.statvfs(source).f_bsize


def test_xattrs_off_answer_enosys(source: Path) -> None:
    mirror = _mirror(source)
    with pytest.raises(OSError) as exc:
        mirror.getxattr(CTX, p.ROOT_ID, b"user.k", 0)
    assert exc.value.errno == errno.ENOSYS
