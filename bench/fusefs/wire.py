"""FUSE messages as Python values: request decoding and reply encoding.

A request is decoded into its `Context` (who asks, about which node) and the arguments of its
operation, one decoder per request kind, so that operations never see a byte offset. Replies
are encoded from what operations return: `Entry`, `Attr`, `Opened`, `Dirents`, statvfs
results, counts and raw bytes. Layouts are include/uapi/linux/fuse.h's (bench.fusefs.protocol).
"""

from __future__ import annotations

import errno
import functools
import os
from typing import NamedTuple

from bench.fusefs import protocol as p

NS = 1_000_000_000
BODY = p.IN_HEADER_SIZE  # where a request's body starts
NOW = "now"  # an AttrChanges time: the file system's clock at the change (UTIME_NOW)


class Context(NamedTuple):
    """Who sent a request, and the node it is about (fuse_in_header)."""

    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int


class Entry(NamedTuple):
    """A node handed to the kernel with one lookup reference (fuse_entry_out)."""

    nodeid: int
    attr: os.stat_result
    entry_timeout: float  # seconds the kernel may cache the name
    attr_timeout: float  # seconds the kernel may cache the attributes
    generation: int = 0


class Attr(NamedTuple):
    """Attributes and how long the kernel may cache them (fuse_attr_out)."""

    attr: os.stat_result
    timeout: float


class Opened(NamedTuple):
    """An open file or directory (fuse_open_out)."""

    fh: int
    flags: int = 0  # FOPEN_*
    backing_id: int = 0  # with FOPEN_PASSTHROUGH


class AttrChanges(NamedTuple):
    """What a SETATTR changes; None leaves a field as it is. Times are nanoseconds since the
    epoch, or NOW."""

    mode: int | None
    uid: int | None
    gid: int | None
    size: int | None
    atime: int | str | None
    mtime: int | str | None


class Init(NamedTuple):
    """The kernel's INIT: its protocol version, readahead, and the flags it offers."""

    major: int
    minor: int
    max_readahead: int
    flags: int  # flags2 already merged in as bits 32..63


class Dirents:
    """A READDIR or READDIRPLUS reply being filled: entries go in while `fits` says they do."""

    __slots__ = ("data", "nodeids", "_size", "_plus")

    def __init__(self, size: int, plus: bool = False) -> None:
        self.data = bytearray()
        self.nodeids: list[int] = []  # READDIRPLUS: nodes whose lookup reference the reply carries
        self._size = size
        self._plus = plus

    def fits(self, name: bytes) -> bool:
        """Whether an entry called `name` still fits in the reply."""
        extra = p.ENTRY_OUT.size if self._plus else 0
        return len(self.data) + _dirent_size(name) + extra <= self._size

    def add(self, name: bytes, ino: int, dtype: int, offset: int, entry: Entry | None = None) -> None:
        """Append an entry that fits; `offset` is where a READDIR continues after it. READDIRPLUS:
        `entry` hands its node to the kernel with a lookup reference (None: no node, as for .
        and ..)."""
        if self._plus:
            if entry is None:
                self.data += bytes(p.ENTRY_OUT.size)
            else:
                self.data += entry_out(entry)
                self.nodeids.append(entry.nodeid)
        padding = _dirent_size(name) - p.DIRENT.size - len(name)
        self.data += p.DIRENT.pack(ino, offset, len(name), dtype) + name + bytes(padding)


def _dirent_size(name: bytes) -> int:
    return (p.DIRENT.size + len(name) + 7) & ~7


# -- requests ------------------------------------------------------------------------------


def header(msg: bytes) -> tuple[int, Context]:
    """The opcode and the context of a request."""
    _, opcode, unique, nodeid, uid, gid, pid, _, _ = p.IN_HEADER.unpack_from(msg)
    return opcode, Context(unique, nodeid, uid, gid, pid)


def _string(msg: bytes, start: int) -> bytes:
    """The NUL-terminated string at `start`."""
    return msg[start : msg.index(b"\0", start)]


def _two_strings(msg: bytes, start: int) -> tuple[bytes, bytes]:
    end = msg.index(b"\0", start)
    return msg[start:end], _string(msg, end + 1)


def init_in(msg: bytes) -> Init:
    """INIT's body."""
    major, minor, max_readahead, flags, flags2 = p.INIT_IN.unpack_from(msg, BODY)
    return Init(major, minor, max_readahead, flags | (flags2 << 32 if flags & p.INIT_EXT else 0))


def no_args(ctx: Context, msg: bytes) -> tuple:
    """INTERRUPT, DESTROY: nothing the operation needs."""
    return ()


def node(ctx: Context, msg: bytes) -> tuple[int]:
    """READLINK, STATFS: (nodeid,)."""
    return (ctx.nodeid,)


def named(ctx: Context, msg: bytes) -> tuple[int, bytes]:
    """LOOKUP, UNLINK, RMDIR, REMOVEXATTR: (nodeid, name)."""
    return ctx.nodeid, _string(msg, BODY)


def forget_in(ctx: Context, msg: bytes) -> tuple[int, int]:
    """FORGET: (nodeid, nlookup)."""
    return ctx.nodeid, p.FORGET_IN.unpack_from(msg, BODY)[0]


def batch_forget_in(ctx: Context, msg: bytes) -> tuple[list[tuple[int, int]]]:
    """BATCH_FORGET: ([(nodeid, nlookup), ...],)."""
    count = p.BATCH_FORGET_IN.unpack_from(msg, BODY)[0]
    start = BODY + p.BATCH_FORGET_IN.size
    return (list(p.FORGET_ONE.iter_unpack(msg[start : start + p.FORGET_ONE.size * count])),)


def getattr_in(ctx: Context, msg: bytes) -> tuple[int, int | None]:
    """GETATTR: (nodeid, fh or None)."""
    flags, _, fh = p.GETATTR_IN.unpack_from(msg, BODY)
    return ctx.nodeid, fh if flags & p.GETATTR_FH else None


def setattr_in(ctx: Context, msg: bytes) -> tuple[int, AttrChanges, int | None]:
    """SETATTR: (nodeid, changes, fh or None)."""
    (valid, _, fh, size, _, atime, mtime, _, atimensec, mtimensec, _, mode, _, uid, gid,
     _) = p.SETATTR_IN.unpack_from(msg, BODY)
    changes = AttrChanges(
        mode if valid & p.FATTR_MODE else None,
        uid if valid & p.FATTR_UID else None,
        gid if valid & p.FATTR_GID else None,
        size if valid & p.FATTR_SIZE else None,
        _time(valid, p.FATTR_ATIME, p.FATTR_ATIME_NOW, atime, atimensec),
        _time(valid, p.FATTR_MTIME, p.FATTR_MTIME_NOW, mtime, mtimensec),
    )
    return ctx.nodeid, changes, fh if valid & p.FATTR_FH else None


def _time(valid: int, bit: int, now_bit: int, sec: int, nsec: int) -> int | str | None:
    if valid & now_bit:
        return NOW
    if valid & bit:
        return sec * NS + nsec
    return None


def symlink_in(ctx: Context, msg: bytes) -> tuple[int, bytes, bytes]:
    """SYMLINK: (parent, name, target)."""
    return (ctx.nodeid, *_two_strings(msg, BODY))


def mknod_in(ctx: Context, msg: bytes) -> tuple[int, bytes, int, int]:
    """MKNOD: (parent, name, mode, rdev)."""
    mode, rdev, _ = p.MKNOD_IN.unpack_from(msg, BODY)
    return ctx.nodeid, _string(msg, BODY + p.MKNOD_IN.size), mode, _decode_dev(rdev)


def mkdir_in(ctx: Context, msg: bytes) -> tuple[int, bytes, int]:
    """MKDIR: (parent, name, mode)."""
    mode, _ = p.MKDIR_IN.unpack_from(msg, BODY)
    return ctx.nodeid, _string(msg, BODY + p.MKDIR_IN.size), mode


def rename_in(ctx: Context, msg: bytes) -> tuple[int, bytes, int, bytes, int]:
    """RENAME: (parent, name, new parent, new name, flags 0)."""
    newdir = p.RENAME_IN.unpack_from(msg, BODY)[0]
    old, new = _two_strings(msg, BODY + p.RENAME_IN.size)
    return ctx.nodeid, old, newdir, new, 0


def rename2_in(ctx: Context, msg: bytes) -> tuple[int, bytes, int, bytes, int]:
    """RENAME2: (parent, name, new parent, new name, RENAME_* flags)."""
    newdir, flags, _ = p.RENAME2_IN.unpack_from(msg, BODY)
    old, new = _two_strings(msg, BODY + p.RENAME2_IN.size)
    return ctx.nodeid, old, newdir, new, flags


def link_in(ctx: Context, msg: bytes) -> tuple[int, int, bytes]:
    """LINK: (node, new parent, new name)."""
    return p.LINK_IN.unpack_from(msg, BODY)[0], ctx.nodeid, _string(msg, BODY + p.LINK_IN.size)


def open_in(ctx: Context, msg: bytes) -> tuple[int, int]:
    """OPEN, OPENDIR: (nodeid, open flags)."""
    return ctx.nodeid, p.OPEN_IN.unpack_from(msg, BODY)[0]


def create_in(ctx: Context, msg: bytes) -> tuple[int, bytes, int, int]:
    """CREATE: (parent, name, mode, open flags)."""
    flags, mode, _, _ = p.CREATE_IN.unpack_from(msg, BODY)
    return ctx.nodeid, _string(msg, BODY + p.CREATE_IN.size), mode, flags


def read_in(ctx: Context, msg: bytes) -> tuple[int, int, int, int]:
    """READ, READDIR, READDIRPLUS: (nodeid, fh, offset, size)."""
    fh, offset, size, _ = p.READ_IN.unpack_from(msg, BODY)
    return ctx.nodeid, fh, offset, size


def write_in(ctx: Context, msg: bytes) -> tuple[int, int, int, memoryview]:
    """WRITE: (nodeid, fh, offset, data)."""
    fh, offset, size, _ = p.WRITE_IN.unpack_from(msg, BODY)
    start = BODY + p.WRITE_IN_SIZE
    return ctx.nodeid, fh, offset, memoryview(msg)[start : start + size]


def fh_in(ctx: Context, msg: bytes) -> tuple[int, int]:
    """RELEASE, RELEASEDIR, FLUSH: (nodeid, fh)."""
    return ctx.nodeid, p.RELEASE_IN.unpack_from(msg, BODY)[0]


def fsync_in(ctx: Context, msg: bytes) -> tuple[int, int, bool]:
    """FSYNC, FSYNCDIR: (nodeid, fh, datasync)."""
    fh, flags = p.FSYNC_IN.unpack_from(msg, BODY)
    return ctx.nodeid, fh, bool(flags & p.FSYNC_FDATASYNC)


def setxattr_in(ctx: Context, msg: bytes) -> tuple[int, bytes, bytes, int]:
    """SETXATTR: (nodeid, name, value, XATTR_* flags)."""
    size, flags = p.SETXATTR_IN.unpack_from(msg, BODY)
    name = _string(msg, BODY + p.SETXATTR_IN.size)
    start = BODY + p.SETXATTR_IN.size + len(name) + 1
    return ctx.nodeid, name, msg[start : start + size], flags


def getxattr_in(ctx: Context, msg: bytes) -> tuple[int, bytes, int]:
    """GETXATTR: (nodeid, name, size of the caller's buffer)."""
    size, _ = p.GETXATTR_IN.unpack_from(msg, BODY)
    return ctx.nodeid, _string(msg, BODY + p.GETXATTR_IN.size), size


def listxattr_in(ctx: Context, msg: bytes) -> tuple[int, int]:
    """LISTXATTR: (nodeid, size of the caller's buffer)."""
    return ctx.nodeid, p.GETXATTR_IN.unpack_from(msg, BODY)[0]


def access_in(ctx: Context, msg: bytes) -> tuple[int, int]:
    """ACCESS: (nodeid, mask)."""
    return ctx.nodeid, p.ACCESS_IN.unpack_from(msg, BODY)[0]


def fallocate_in(ctx: Context, msg: bytes) -> tuple[int, int, int, int, int]:
    """FALLOCATE: (nodeid, fh, offset, length, mode)."""
    fh, offset, length, mode = p.FALLOCATE_IN.unpack_from(msg, BODY)
    return ctx.nodeid, fh, offset, length, mode


def lseek_in(ctx: Context, msg: bytes) -> tuple[int, int, int, int]:
    """LSEEK: (nodeid, fh, offset, whence)."""
    fh, offset, whence = p.LSEEK_IN.unpack_from(msg, BODY)
    return ctx.nodeid, fh, offset, whence


def _decode_dev(dev: int) -> int:
    """The kernel's new_decode_dev() of a MKNOD rdev."""
    return os.makedev((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))


# -- replies -------------------------------------------------------------------------------


def _encode_dev(dev: int) -> int:
    """The kernel's new_encode_dev(), which FUSE uses for rdev."""
    major, minor = os.major(dev), os.minor(dev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


@functools.lru_cache(maxsize=16)  # a file system uses a few timeouts, on every entry and attr reply
def _split(seconds: float) -> tuple[int, int]:
    whole = int(seconds)
    return whole, int((seconds - whole) * NS)


def attr_fields(st: os.stat_result) -> tuple[int, ...]:
    """fuse_attr fields of a stat result."""
    a, an = divmod(st.st_atime_ns, NS)
    m, mn = divmod(st.st_mtime_ns, NS)
    c, cn = divmod(st.st_ctime_ns, NS)
    return (st.st_ino, st.st_size, st.st_blocks, a, m, c, an, mn, cn, st.st_mode, st.st_nlink,
            st.st_uid, st.st_gid, _encode_dev(st.st_rdev), st.st_blksize, 0)


def entry_out(entry: Entry) -> bytes:
    """LOOKUP, MKNOD, MKDIR, SYMLINK, LINK."""
    entry_s, entry_ns = _split(entry.entry_timeout)
    attr_s, attr_ns = _split(entry.attr_timeout)
    return p.ENTRY_OUT.pack(entry.nodeid, entry.generation, entry_s, attr_s, entry_ns, attr_ns,
                            *attr_fields(entry.attr))


def attr_out(attr: Attr) -> bytes:
    """GETATTR, SETATTR."""
    return p.ATTR_OUT.pack(*_split(attr.timeout), 0, *attr_fields(attr.attr))


def open_out(opened: Opened) -> bytes:
    """OPEN, OPENDIR."""
    return p.OPEN_OUT.pack(*opened)


def create_out(created: tuple[Entry, Opened]) -> bytes:
    """CREATE: the new entry, then the open."""
    entry, opened = created
    return entry_out(entry) + open_out(opened)


def write_out(written: int) -> bytes:
    """WRITE: how many bytes were written."""
    return p.WRITE_OUT.pack(written, 0)


def lseek_out(offset: int) -> bytes:
    """LSEEK: the offset found."""
    return p.LSEEK_OUT.pack(offset)


def statfs_out(s: os.statvfs_result) -> bytes:
    """STATFS."""
    return p.STATFS_OUT.pack(s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree, s.f_bsize,
                             s.f_namemax, s.f_frsize, 0)


def dirents_out(dirents: Dirents) -> bytearray:
    """READDIR, READDIRPLUS."""
    return dirents.data


def raw(body: bytes) -> bytes:
    """READ, READLINK, GETXATTR, LISTXATTR: the bytes as they are."""
    return body


def empty(_: None) -> bytes:
    """Requests answered with success alone."""
    return b""


def xattr_reply(value: bytes, size: int) -> bytes:
    """GETXATTR, LISTXATTR for a caller's buffer of `size` bytes: the value's length when the
    caller asks for it (size 0), else the value; ERANGE when it does not fit."""
    if size == 0:
        return p.GETXATTR_OUT.pack(len(value), 0)
    if len(value) > size:
        raise OSError(errno.ERANGE, "buffer too small")
    return value


def xattr_names(names: list[str]) -> bytes:
    """LISTXATTR's value: the names, each NUL-terminated."""
    return b"".join(os.fsencode(name) + b"\0" for name in names)


def init_out(init: Init, flags: int, max_background: int, congestion_threshold: int, max_write: int,
             max_pages: int, max_stack_depth: int) -> bytes:
    """INIT: protocol 7.(the kernel's minor, at most ours) with the agreed `flags`."""
    return p.INIT_OUT.pack(
        p.KERNEL_MAJOR, min(init.minor, p.KERNEL_MINOR_MAX), init.max_readahead, flags & 0xFFFFFFFF,
        max_background, congestion_threshold, max_write, 1, max_pages, 0, flags >> 32, max_stack_depth,
    )
