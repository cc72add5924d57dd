"""FUSE kernel protocol constants and precompiled struct layouts (x86-64, protocol 7.45)."""

from __future__ import annotations

import struct
from enum import IntEnum

KERNEL_MAJOR = 7
KERNEL_MINOR_MAX = 45
ROOT_ID = 1


class Opcode(IntEnum):
    """FUSE request opcodes (include/uapi/linux/fuse.h, enum fuse_opcode)."""

    LOOKUP = 1
    FORGET = 2
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    SETXATTR = 21
    GETXATTR = 22
    LISTXATTR = 23
    REMOVEXATTR = 24
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    GETLK = 31
    SETLK = 32
    SETLKW = 33
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36
    BMAP = 37
    DESTROY = 38
    IOCTL = 39
    POLL = 40
    NOTIFY_REPLY = 41
    BATCH_FORGET = 42
    FALLOCATE = 43
    READDIRPLUS = 44
    RENAME2 = 45
    LSEEK = 46
    COPY_FILE_RANGE = 47
    SETUPMAPPING = 48
    REMOVEMAPPING = 49
    SYNCFS = 50
    TMPFILE = 51
    STATX = 52
    COPY_FILE_RANGE_64 = 53


MAX_OPCODE = max(Opcode) + 1  # per-opcode counter arrays are this long
OPCODE_NAMES: dict[int, str] = {op.value: op.name for op in Opcode}


class InitFlag(IntEnum):
    """INIT flags (include/uapi/linux/fuse.h, FUSE_*); bits 32..63 travel in flags2, shifted down."""

    ASYNC_READ = 1 << 0
    POSIX_LOCKS = 1 << 1
    FILE_OPS = 1 << 2
    ATOMIC_O_TRUNC = 1 << 3
    EXPORT_SUPPORT = 1 << 4
    BIG_WRITES = 1 << 5
    DONT_MASK = 1 << 6
    SPLICE_WRITE = 1 << 7
    SPLICE_MOVE = 1 << 8
    SPLICE_READ = 1 << 9
    FLOCK_LOCKS = 1 << 10
    HAS_IOCTL_DIR = 1 << 11
    AUTO_INVAL_DATA = 1 << 12
    DO_READDIRPLUS = 1 << 13
    READDIRPLUS_AUTO = 1 << 14
    ASYNC_DIO = 1 << 15
    WRITEBACK_CACHE = 1 << 16
    NO_OPEN_SUPPORT = 1 << 17
    PARALLEL_DIROPS = 1 << 18
    HANDLE_KILLPRIV = 1 << 19
    POSIX_ACL = 1 << 20
    ABORT_ERROR = 1 << 21
    MAX_PAGES = 1 << 22
    CACHE_SYMLINKS = 1 << 23
    NO_OPENDIR_SUPPORT = 1 << 24
    EXPLICIT_INVAL_DATA = 1 << 25
    MAP_ALIGNMENT = 1 << 26
    SUBMOUNTS = 1 << 27
    HANDLE_KILLPRIV_V2 = 1 << 28
    SETXATTR_EXT = 1 << 29
    INIT_EXT = 1 << 30
    SECURITY_CTX = 1 << 32
    HAS_INODE_DAX = 1 << 33
    CREATE_SUPP_GROUP = 1 << 34
    HAS_EXPIRE_ONLY = 1 << 35
    DIRECT_IO_ALLOW_MMAP = 1 << 36
    PASSTHROUGH = 1 << 37
    NO_EXPORT_SUPPORT = 1 << 38
    HAS_RESEND = 1 << 39
    ALLOW_IDMAP = 1 << 40
    OVER_IO_URING = 1 << 41
    REQUEST_TIMEOUT = 1 << 42


# Each flag also as a module constant (p.PASSTHROUGH), as the re module does with its flags.
globals().update(InitFlag.__members__)
INIT_FLAG_NAMES: dict[int, str] = {flag.value: flag.name for flag in InitFlag}


def init_flag_names(flags: int) -> list[str]:
    """The names of the INIT flags set in `flags`, sorted; a bit without a name as `bit<N>`."""
    return sorted(INIT_FLAG_NAMES.get(1 << n, f"bit{n}") for n in range(flags.bit_length()) if flags >> n & 1)

# Open reply flags.
FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6
FOPEN_PASSTHROUGH = 1 << 7

# fuse_write_in.write_flags: a write of the page cache (the kernel's writeback), fh guessed.
FUSE_WRITE_CACHE = 1 << 0

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
READ_IN = struct.Struct("<QQII")  # fh, offset, size, read_flags or write_flags (lock_owner etc. unused)
WRITE_IN = READ_IN
WRITE_OUT = struct.Struct("<II")
RELEASE_IN = struct.Struct("<QII")
FSYNC_IN = struct.Struct("<QI")
FORGET_IN = struct.Struct("<Q")
BATCH_FORGET_IN = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
MKNOD_IN = struct.Struct("<III4x")  # mode, rdev, umask
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

