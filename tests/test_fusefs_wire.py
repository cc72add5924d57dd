"""bench.fusefs.wire: requests decoded from bytes built with the kernel's layouts, and replies
encoded back into them."""

from __future__ import annotations

import errno
import os

import pytest
from fusefs_helpers import request

from bench.fusefs import protocol as p
from bench.fusefs import wire
from bench.fusefs.protocol import Opcode
from bench.fusefs.wire import Attr, AttrChanges, Context, Dirents, Entry, Opened

CTX = Context(unique=77, nodeid=5, uid=1000, gid=100, pid=4242)
SEC = 1_700_000_000
STAT = os.stat_result(
    (0o100644, 1234, 99, 2, 1000, 100, 4096, SEC, SEC + 1, SEC + 2),
    {"st_atime_ns": SEC * 10**9 + 1, "st_mtime_ns": (SEC + 1) * 10**9 + 2,
     "st_ctime_ns": (SEC + 2) * 10**9 + 3, "st_blksize": 512, "st_blocks": 8,
     "st_rdev": os.makedev(8, 300)},
)


def _new_encode_dev(major: int, minor: int) -> int:
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


DECODED = [
    pytest.param(wire.node, b"", (5,), id="readlink-statfs"),
    pytest.param(wire.no_args, b"", (), id="destroy-interrupt"),
    pytest.param(wire.named, b"name\0", (5, b"name"), id="lookup-unlink-rmdir"),
    pytest.param(wire.forget_in, p.FORGET_IN.pack(3), (5, 3), id="forget"),
    pytest.param(wire.batch_forget_in,
                 p.BATCH_FORGET_IN.pack(2, 0) + p.FORGET_ONE.pack(10, 1) + p.FORGET_ONE.pack(11, 2),
                 ([(10, 1), (11, 2)],), id="batch-forget"),
    pytest.param(wire.getattr_in, p.GETATTR_IN.pack(p.GETATTR_FH, 0, 9), (5, 9), id="getattr-fh"),
    pytest.param(wire.getattr_in, p.GETATTR_IN.pack(0, 0, 9), (5, None), id="getattr"),
    pytest.param(wire.symlink_in, b"name\0target\0", (5, b"name", b"target"), id="symlink"),
    pytest.param(wire.mknod_in, p.MKNOD_IN.pack(0o20644, _new_encode_dev(8, 300), 0o22) + b"dev\0",
                 (5, b"dev", 0o20644, os.makedev(8, 300)), id="mknod"),
    pytest.param(wire.mkdir_in, p.MKDIR_IN.pack(0o750, 0o22) + b"d\0", (5, b"d", 0o750), id="mkdir"),
    pytest.param(wire.rename_in, p.RENAME_IN.pack(6) + b"a\0b\0", (5, b"a", 6, b"b", 0), id="rename"),
    pytest.param(wire.rename2_in, p.RENAME2_IN.pack(6, 2, 0) + b"a\0b\0", (5, b"a", 6, b"b", 2), id="rename2"),
    pytest.param(wire.link_in, p.LINK_IN.pack(8) + b"hard\0", (8, 5, b"hard"), id="link"),
    pytest.param(wire.open_in, p.OPEN_IN.pack(os.O_RDWR | os.O_DIRECT, 0), (5, os.O_RDWR | os.O_DIRECT),
                 id="open-opendir"),
    pytest.param(wire.create_in, p.CREATE_IN.pack(os.O_WRONLY | os.O_EXCL, 0o640, 0o22, 0) + b"new\0",
                 (5, b"new", 0o640, os.O_WRONLY | os.O_EXCL), id="create"),
    pytest.param(wire.read_in, p.READ_IN.pack(9, 4096, 512, 0) + bytes(16), (5, 9, 4096, 512),
                 id="read-readdir"),
    pytest.param(wire.fh_in, p.RELEASE_IN.pack(9, 0, 0) + bytes(8), (5, 9), id="release-flush"),
    pytest.param(wire.fsync_in, p.FSYNC_IN.pack(9, p.FSYNC_FDATASYNC) + bytes(4), (5, 9, True), id="fdatasync"),
    pytest.param(wire.fsync_in, p.FSYNC_IN.pack(9, 0) + bytes(4), (5, 9, False), id="fsync"),
    pytest.param(wire.setxattr_in, p.SETXATTR_IN.pack(5, 1) + b"user.k\0value", (5, b"user.k", b"value", 1),
                 id="setxattr"),
    pytest.param(wire.getxattr_in, p.GETXATTR_IN.pack(64, 0) + b"user.k\0", (5, b"user.k", 64), id="getxattr"),
    pytest.param(wire.listxattr_in, p.GETXATTR_IN.pack(0, 0), (5, 0), id="listxattr"),
    pytest.param(wire.access_in, p.ACCESS_IN.pack(os.R_OK) + bytes(4), (5, os.R_OK), id="access"),
    pytest.param(wire.fallocate_in, p.FALLOCATE_IN.pack(9, 4096, 8192, 1) + bytes(4), (5, 9, 4096, 8192, 1),
                 id="fallocate"),
    pytest.param(wire.lseek_in, p.LSEEK_IN.pack(9, 10, os.SEEK_HOLE) + bytes(4), (5, 9, 10, os.SEEK_HOLE),
                 id="lseek"),
]


@pytest.mark.parametrize(("decode", "body", "expected"), DECODED)
def test_requests_decode_into_their_arguments(decode, body: bytes, expected: tuple) -> None:
    assert decode(CTX, request(0, body)) == expected


def test_header_gives_the_opcode_and_the_context() -> None:
    assert wire.header(request(Opcode.LOOKUP, b"x\0")) == (Opcode.LOOKUP, CTX)


def test_write_data_is_the_payload_without_a_copy() -> None:
    msg = request(Opcode.WRITE, p.WRITE_IN.pack(9, 100, 3, 0) + bytes(16) + b"abcdef")
    nodeid, fh, offset, data = wire.write_in(CTX, msg)
    assert (nodeid, fh, offset, bytes(data)) == (5, 9, 100, b"abc")
    assert isinstance(data, memoryview)


def test_setattr_decodes_only_the_valid_fields() -> None:
    body = p.SETATTR_IN.pack(p.FATTR_MODE | p.FATTR_SIZE | p.FATTR_MTIME | p.FATTR_ATIME_NOW | p.FATTR_FH,
                             0, 9, 100, 0, 1, 2, 0, 3, 4, 0, 0o100600, 0, 1234, 5678, 0)
    assert wire.setattr_in(CTX, request(Opcode.SETATTR, body)) == (
        5, AttrChanges(mode=0o100600, uid=None, gid=None, size=100, atime=wire.NOW, mtime=2 * 10**9 + 4), 9)
    body = p.SETATTR_IN.pack(p.FATTR_UID | p.FATTR_GID, 0, 9, 100, 0, 1, 2, 0, 3, 4, 0, 0o600, 0, 1234, 5678, 0)
    assert wire.setattr_in(CTX, request(Opcode.SETATTR, body)) == (
        5, AttrChanges(mode=None, uid=1234, gid=5678, size=None, atime=None, mtime=None), None)


def test_init_merges_flags2_only_with_init_ext() -> None:
    with_ext = request(Opcode.INIT, p.INIT_IN.pack(7, 45, 65536, p.INIT_EXT | p.ASYNC_READ, 1 << 5) + bytes(44))
    assert wire.init_in(with_ext) == wire.Init(7, 45, 65536, p.INIT_EXT | p.ASYNC_READ | p.PASSTHROUGH)
    without = request(Opcode.INIT, p.INIT_IN.pack(7, 31, 65536, p.ASYNC_READ, 1 << 5) + bytes(44))
    assert wire.init_in(without).flags == p.ASYNC_READ


def test_init_reply_has_our_minor_at_most_and_flags2() -> None:
    init = wire.Init(7, 99, 131072, 0)
    out = wire.init_out(init, p.INIT_EXT | p.PASSTHROUGH, max_background=64, congestion_threshold=48,
                        max_write=1 << 20, max_pages=256, max_stack_depth=1)
    fields = p.INIT_OUT.unpack(out)
    assert fields == (7, p.KERNEL_MINOR_MAX, 131072, p.INIT_EXT, 64, 48, 1 << 20, 1, 256, 0, 1 << 5, 1)


def _attr_of(fields: tuple) -> dict[str, int]:
    names = ("ino", "size", "blocks", "atime", "mtime", "ctime", "atimensec", "mtimensec", "ctimensec",
             "mode", "nlink", "uid", "gid", "rdev", "blksize", "flags")
    return dict(zip(names, fields))


def test_entry_reply() -> None:
    fields = p.ENTRY_OUT.unpack(wire.entry_out(Entry(42, STAT, entry_timeout=1.5, attr_timeout=0.25)))
    assert fields[:6] == (42, 0, 1, 0, 500_000_000, 250_000_000)
    assert _attr_of(fields[6:]) == {
        "ino": 1234, "size": 4096, "blocks": 8, "atime": SEC, "mtime": SEC + 1, "ctime": SEC + 2,
        "atimensec": 1, "mtimensec": 2, "ctimensec": 3, "mode": 0o100644, "nlink": 2, "uid": 1000,
        "gid": 100, "rdev": _new_encode_dev(8, 300), "blksize": 512, "flags": 0}


def test_attr_open_create_write_lseek_replies() -> None:
    fields = p.ATTR_OUT.unpack(wire.attr_out(Attr(STAT, 2.0)))
    assert fields[:3] == (2, 0, 0) and _attr_of(fields[3:])["ino"] == 1234
    assert p.OPEN_OUT.unpack(wire.open_out(Opened(7, p.FOPEN_PASSTHROUGH, 3))) == (7, p.FOPEN_PASSTHROUGH, 3)
    created = wire.create_out((Entry(42, STAT, 1.0, 1.0), Opened(7)))
    assert len(created) == p.ENTRY_OUT.size + p.OPEN_OUT.size
    assert p.OPEN_OUT.unpack_from(created, p.ENTRY_OUT.size) == (7, 0, 0)
    assert p.WRITE_OUT.unpack(wire.write_out(4096)) == (4096, 0)
    assert p.LSEEK_OUT.unpack(wire.lseek_out(8192)) == (8192,)
    assert wire.empty(None) == b"" and wire.raw(b"target") == b"target"


def test_statfs_reply() -> None:
    s = os.statvfs_result((4096, 1024, 1000, 900, 800, 500, 400, 300, 0, 255))
    assert p.STATFS_OUT.unpack(wire.statfs_out(s)) == (1000, 900, 800, 500, 400, 4096, 255, 1024, 0)


def test_xattr_reply_sizes() -> None:
    assert p.GETXATTR_OUT.unpack(wire.xattr_reply(b"value", 0)) == (5, 0)
    assert wire.xattr_reply(b"value", 5) == b"value"
    with pytest.raises(OSError) as exc:
        wire.xattr_reply(b"value", 4)
    assert exc.value.errno == errno.ERANGE
    assert wire.xattr_names(["user.a", "user.b"]) == b"user.a\0user.b\0"


def _dirents(data: bytes, plus: bool) -> list[tuple]:
    """(nodeid or None, ino, off, name, dtype) of each entry of a READDIR(PLUS) reply."""
    out, at = [], 0
    while at < len(data):
        nodeid = None
        if plus:
            nodeid = p.ENTRY_OUT.unpack_from(data, at)[0]
            at += p.ENTRY_OUT.size
        ino, off, namelen, dtype = p.DIRENT.unpack_from(data, at)
        name = data[at + p.DIRENT.size : at + p.DIRENT.size + namelen]
        at += (p.DIRENT.size + namelen + 7) & ~7
        out.append((nodeid, ino, off, name, dtype))
    assert at == len(data)
    return out


def test_dirents_fill_until_full() -> None:
    out = Dirents(2 * 32)  # two dirents of names up to 8 bytes
    for index, name in enumerate([b"a", b"eightchr", b"c"]):
        if not out.fits(name):
            break
        out.add(name, 100 + index, 8, index + 1)
    assert _dirents(wire.dirents_out(out), plus=False) == [
        (None, 100, 1, b"a", 8), (None, 101, 2, b"eightchr", 8)]
    assert len(out.data) % 8 == 0 and out.nodeids == []


def test_direntplus_carry_entries_and_record_their_nodes() -> None:
    out = Dirents(2 * (p.ENTRY_OUT.size + 32), plus=True)
    out.add(b".", 1, 4, 1)
    out.add(b"f", 1234, 8, 2, Entry(42, STAT, 1.0, 1.0))
    assert not out.fits(b"g")
    assert _dirents(bytes(out.data), plus=True) == [(0, 1, 1, b".", 4), (42, 1234, 2, b"f", 8)]
    assert out.nodeids == [42]
