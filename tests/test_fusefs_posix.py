"""POSIX behaviour of the built-in FUSE server, in plain and passthrough (keep/close/cache) modes."""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fusefs_helpers import MODES, Mounted, mode_params, mount, needs_root

from bench.fusefs import libc

pytestmark = [pytest.mark.integration, needs_root]

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


@pytest.fixture(params=mode_params())
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mounted]:
    with mount(tmp_path, *MODES[request.param], files={"hello": b"hello world\n"}) as mounted:
        yield mounted


def test_read_write_append(fs: Mounted) -> None:
    m = fs.path
    assert (m / "hello").read_bytes() == b"hello world\n"
    (m / "new").write_bytes(b"abc")
    with open(m / "new", "ab") as f:
        f.write(b"def")
    assert (m / "new").read_bytes() == b"abcdef"
    assert (fs.source / "new").read_bytes() == b"abcdef"
    assert os.stat(m / "new").st_size == 6
    fd = os.open(m / "new", os.O_RDWR)
    try:
        assert os.pwrite(fd, b"XY", 1) == 2
        assert os.pread(fd, 10, 0) == b"aXYdef"
        os.fsync(fd)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def test_create_exclusive_and_missing(fs: Mounted) -> None:
    with pytest.raises(FileExistsError):
        os.open(fs.path / "hello", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with pytest.raises(FileNotFoundError):
        os.stat(fs.path / "nope")
    fd = os.open(fs.path / "made", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
    os.close(fd)
    assert stat.S_IMODE(os.stat(fs.path / "made").st_mode) == 0o640


def test_truncate_path_and_fd(fs: Mounted) -> None:
    p = fs.path / "hello"
    os.truncate(p, 5)
    assert p.read_bytes() == b"hello"
    with open(p, "r+b") as f:
        f.truncate(2)
        f.flush()
        assert os.fstat(f.fileno()).st_size == 2
    assert p.read_bytes() == b"he"
    with open(p, "wb") as f:  # O_TRUNC
        f.write(b"z")
    assert (fs.source / "hello").read_bytes() == b"z"


def test_chmod_chown_utimens(fs: Mounted) -> None:
    p = fs.path / "hello"
    os.chmod(p, 0o600)
    assert stat.S_IMODE(os.stat(fs.source / "hello").st_mode) == 0o600
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(fs.source / "hello")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    os.utime(p)  # UTIME_NOW
    assert os.stat(p).st_mtime_ns > 2_000_000_456
    libc.utimens_fd(os.open(p, os.O_PATH), (5, 0), (0, libc.UTIME_OMIT))
    st = os.stat(fs.source / "hello")
    assert st.st_atime_ns == 5_000_000_000 and st.st_mtime_ns > 2_000_000_456


def test_directories(fs: Mounted) -> None:
    m = fs.path
    os.mkdir(m / "d", 0o750)
    assert stat.S_ISDIR(os.stat(fs.source / "d").st_mode)
    names = {f"f{i:04d}-{'x' * 40}" for i in range(300)}  # several READDIR pages
    for name in names:
        (m / "d" / name).write_bytes(b"")
    assert set(os.listdir(m / "d")) == names
    with os.scandir(m / "d") as it:
        assert all(e.is_file() for e in it)
    with pytest.raises(OSError) as exc:
        os.rmdir(m / "d")
    assert exc.value.errno == errno.ENOTEMPTY
    for name in names:
        os.unlink(m / "d" / name)
    os.rmdir(m / "d")
    assert not (fs.source / "d").exists()
    assert sorted(os.listdir(m)) == ["hello"]


def test_rename_and_flags(fs: Mounted) -> None:
    m = fs.path
    (m / "a").write_bytes(b"A")
    (m / "b").write_bytes(b"B")
    os.rename(m / "a", m / "c")
    assert not (m / "a").exists() and (m / "c").read_bytes() == b"A"
    os.rename(m / "c", m / "b")  # over an existing file
    assert (m / "b").read_bytes() == b"A"
    (m / "a").write_bytes(b"new A")
    dfd = os.open(m, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            libc.renameat2(dfd, b"a", dfd, b"b", RENAME_NOREPLACE)
        libc.renameat2(dfd, b"a", dfd, b"b", RENAME_EXCHANGE)
        libc.renameat2(dfd, b"b", dfd, b"moved", RENAME_NOREPLACE)
    finally:
        os.close(dfd)
    assert (m / "a").read_bytes() == b"A"
    assert (m / "moved").read_bytes() == b"new A"
    os.mkdir(m / "dir")
    os.rename(m / "moved", m / "dir" / "inside")
    assert (fs.source / "dir" / "inside").read_bytes() == b"new A"


def test_links(fs: Mounted) -> None:
    m = fs.path
    os.link(m / "hello", m / "hard")
    assert os.stat(m / "hello").st_nlink == 2
    assert os.stat(m / "hard").st_ino == os.stat(m / "hello").st_ino
    os.symlink("hello", m / "soft")
    assert os.readlink(m / "soft") == "hello"
    assert stat.S_ISLNK(os.lstat(m / "soft").st_mode)
    assert (m / "soft").read_bytes() == b"hello world\n"
    os.unlink(m / "hello")
    assert (m / "hard").read_bytes() == b"hello world\n"
    assert os.stat(m / "hard").st_nlink == 1
    os.mkfifo(m / "fifo")
    assert stat.S_ISFIFO(os.stat(fs.source / "fifo").st_mode)


def test_statfs_fallocate_lseek(fs: Mounted) -> None:
    ours, native = os.statvfs(fs.path), os.statvfs(fs.source)
    assert (ours.f_bsize, ours.f_blocks, ours.f_files) == (native.f_bsize, native.f_blocks, native.f_files)
    p = fs.path / "sparse"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.posix_fallocate(fd, 0, 8192)
        assert os.fstat(fd).st_size == 8192
        os.pwrite(fd, b"x" * 4096, 1 << 20)
        os.fsync(fd)
        native = os.open(fs.source / "sparse", os.O_RDONLY)
        try:
            for offset, whence in [(0, os.SEEK_DATA), (0, os.SEEK_HOLE), (8192, os.SEEK_DATA)]:
                assert os.lseek(fd, offset, whence) == os.lseek(native, offset, whence)
        finally:
            os.close(native)
    finally:
        os.close(fd)


def test_direct_io(fs: Mounted) -> None:
    buf = mmap.mmap(-1, 1 << 16)
    buf.write(os.urandom(1 << 16))
    fd = os.open(fs.path / "direct", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
    try:
        assert os.pwrite(fd, buf, 4096) == 1 << 16
        back = mmap.mmap(-1, 1 << 16)
        assert os.preadv(fd, [back], 4096) == 1 << 16
        assert back[:] == buf[:]
    finally:
        os.close(fd)
    assert (fs.source / "direct").read_bytes()[4096:] == buf[:]


def test_unlinked_while_open(fs: Mounted) -> None:
    with open(fs.path / "hello", "r+b") as f:
        os.unlink(fs.path / "hello")
        f.seek(0, os.SEEK_END)
        f.write(b"more")
        f.flush()
        f.seek(0)
        assert f.read() == b"hello world\nmore"
    assert os.listdir(fs.path) == []


def test_xattr_off_is_unsupported(fs: Mounted) -> None:
    with pytest.raises(OSError) as exc:
        os.setxattr(fs.path / "hello", "user.k", b"v")
    assert exc.value.errno == errno.EOPNOTSUPP


@pytest.mark.parametrize("mode", mode_params()[:2])
def test_xattr_on(tmp_path: Path, mode: str) -> None:
    with mount(tmp_path, *MODES[mode], "--xattr", "on", files={"f": b"x"}) as fs:
        p = fs.path / "f"
        os.setxattr(p, "user.k", b"value")
        assert os.getxattr(p, "user.k") == b"value"
        assert "user.k" in os.listxattr(p)
        assert os.getxattr(fs.source / "f", "user.k") == b"value"
        os.removexattr(p, "user.k")
        with pytest.raises(OSError) as exc:
            os.getxattr(p, "user.k")
        assert exc.value.errno == errno.ENODATA
        with open(p, "ab") as f:  # writes still work with the kernel asking security.capability
            f.write(b"y")
        assert p.read_bytes() == b"xy"


def test_reused_inode_numbers(fs: Mounted) -> None:
    """A deleted file's inode number comes back at once on ext4: the new file is a new node."""
    m = fs.path
    reused = 0
    for i in range(30):
        (m / "victim").write_bytes(b"old")
        old_ino = os.stat(m / "victim").st_ino
        (m / "other").write_bytes(b"x")
        os.rename(m / "other", m / "victim")  # the old victim is deleted, its node still cached
        with open(m / f"new{i}", "w+b") as f:
            reused += os.fstat(f.fileno()).st_ino == old_ino
            f.write(b"fresh")
            f.flush()
            os.ftruncate(f.fileno(), 2)
            os.fchmod(f.fileno(), 0o600)
        assert (m / f"new{i}").read_bytes() == b"fr"
        assert (m / "victim").read_bytes() == b"x"
    print(f"inode numbers reused: {reused} of 30")
