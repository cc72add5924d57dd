"""FUSE kernel protocol constants and precompiled struct layouts (x86-64, protocol 7.45)."""

from __future__ import annotations

import struct
from typing import NamedTuple

KERNEL_MAJOR = 7
KERNEL_MINOR_MAX = 45
ROOT_ID = 1

# Opcodes.
LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE, STATFS, RELEASE = range(8, 19)
FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH, INIT = range(20, 27)
OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, GETLK, SETLK, SETLKW, ACCESS, CREATE = range(27, 36)
INTERRUPT, BMAP, DESTROY, IOCTL, POLL, NOTIFY_REPLY, BATCH_FORGET = range(36, 43)
FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = range(43, 48)
SETUPMAPPING, REMOVEMAPPING, SYNCFS, TMPFILE, STATX, COPY_FILE_RANGE_64 = range(48, 54)
MAX_OPCODE = 54

OPCODE_NAMES: dict[int, str] = {
    1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK",
    8: "MKNOD", 9: "MKDIR", 10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN",
    15: "READ", 16: "WRITE", 17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR",
    22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 26: "INIT", 27: "OPENDIR",
    28: "READDIR", 29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW",
    34: "ACCESS", 35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL",
    40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE", 44: "READDIRPLUS",
    45: "RENAME2", 46: "LSEEK", 47: "COPY_FILE_RANGE", 48: "SETUPMAPPING", 49: "REMOVEMAPPING",
    50: "SYNCFS", 51: "TMPFILE", 52: "STATX", 53: "COPY_FILE_RANGE_64",
}

# INIT flags (bits 32..63 travel in flags2, shifted down).
ASYNC_READ = 1 << 0
BIG_WRITES = 1 << 5
AUTO_INVAL_DATA = 1 << 12
DO_READDIRPLUS = 1 << 13
READDIRPLUS_AUTO = 1 << 14
ASYNC_DIO = 1 << 15
WRITEBACK_CACHE = 1 << 16
PARALLEL_DIROPS = 1 << 18
MAX_PAGES = 1 << 22
INIT_EXT = 1 << 30
PASSTHROUGH = 1 << 37

# Open reply flags.
FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6
FOPEN_PASSTHROUGH = 1 << 7

# SETATTR valid bits.
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE = 1, 2, 4, 8
FATTR_ATIME, FATTR_MTIME, FATTR_FH, FATTR_ATIME_NOW, FATTR_MTIME_NOW = 16, 32, 64, 128, 256

GETATTR_FH = 1
FSYNC_FDATASYNC = 1

# ioctls on /dev/fuse.
FUSE_DEV_IOC_CLONE = 0x8004E500
FUSE_DEV_IOC_BACKING_OPEN = 0x4010E501
FUSE_DEV_IOC_BACKING_CLOSE = 0x4004E502

IN_HEADER_SIZE = 40
OUT_HEADER_SIZE = 16
WRITE_IN_SIZE = 40
MIN_READ_BUFFER = 8192

IN_HEADER = struct.Struct("<IIQQIIIHH")
IN_HEADER_HEAD = struct.Struct("<IIQQ")  # len, opcode, unique, nodeid: all the fast path needs


class InHeader(NamedTuple):
    """fuse_in_header."""

    len: int
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int
    total_extlen: int
    padding: int


OUT_HEADER = struct.Struct("<IiQ")
INIT_IN = struct.Struct("<IIIII")  # major, minor, max_readahead, flags, flags2
INIT_OUT = struct.Struct("<IIIIHHIIHHII2x22x")
assert INIT_OUT.size == 64
# ino, size, blocks, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, nlink, uid, gid,
# rdev, blksize, flags
ATTR_FMT = "QQQqqqIIIIIIIIII"
ENTRY_OUT = struct.Struct("<QQQQII" + ATTR_FMT)
ATTR_OUT = struct.Struct("<QII" + ATTR_FMT)
assert ENTRY_OUT.size == 128 and ATTR_OUT.size == 104
GETATTR_IN = struct.Struct("<IIQ")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
assert SETATTR_IN.size == 88
OPEN_IN = struct.Struct("<II")
OPEN_OUT = struct.Struct("<QIi")
CREATE_IN = struct.Struct("<IIII")
READ_IN = struct.Struct("<QQII")  # fh, offset, size, read_flags (lock_owner etc. unused)
WRITE_IN = READ_IN
WRITE_OUT = struct.Struct("<II")
RELEASE_IN = struct.Struct("<QII")
FSYNC_IN = struct.Struct("<QI")
FORGET_IN = struct.Struct("<Q")
BATCH_FORGET_IN = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
MKNOD_IN = struct.Struct("<III")
MKDIR_IN = struct.Struct("<II")
RENAME_IN = struct.Struct("<Q")
RENAME2_IN = struct.Struct("<QII")
LINK_IN = struct.Struct("<Q")
ACCESS_IN = struct.Struct("<I")
STATFS_OUT = struct.Struct("<QQQQQIIII24x")
assert STATFS_OUT.size == 80
SETXATTR_IN = struct.Struct("<II")
GETXATTR_IN = struct.Struct("<II")
GETXATTR_OUT = struct.Struct("<II")
FALLOCATE_IN = struct.Struct("<QQQI")
LSEEK_IN = struct.Struct("<QQI")
LSEEK_OUT = struct.Struct("<Q")
DIRENT = struct.Struct("<QQII")
BACKING_MAP = struct.Struct("<iIQ")
U32 = struct.Struct("<I")

