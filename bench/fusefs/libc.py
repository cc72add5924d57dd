"""Syscalls the os module lacks, through ctypes: renameat2, fchownat(AT_EMPTY_PATH), utimensat,
fallocate, name_to_handle_at / open_by_handle_at."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
MAX_HANDLE_SZ = 128

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.fchownat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_int]
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def renameat2(olddir: int, old: bytes, newdir: int, new: bytes, flags: int) -> None:
    """rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT flags."""
    _check(_libc.renameat2(olddir, old, newdir, new, flags))


def fchown_fd(fd: int, uid: int, gid: int) -> None:
    """chown an O_PATH fd itself (symlinks included); -1 leaves an id unchanged."""
    _check(_libc.fchownat(fd, b"", uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))


def utimens_fd(fd: int, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
    """Set times of an O_PATH fd's file; each time is (sec, nsec), nsec may be UTIME_NOW/UTIME_OMIT."""
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    _check(_libc.utimensat(fd, b"", ctypes.addressof(times), AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with its mode (keep size, punch hole, ...)."""
    _check(_libc.fallocate(fd, mode, offset, length))


def name_to_handle(fd: int) -> bytes:
    """The file handle (struct file_handle, as bytes) of the file an O_PATH fd refers to."""
    buf = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    ctypes.c_uint.from_buffer(buf).value = MAX_HANDLE_SZ
    mount_id = ctypes.c_int()
    _check(_libc.name_to_handle_at(fd, b"", buf, ctypes.byref(mount_id), AT_EMPTY_PATH))
    return buf.raw[: 8 + ctypes.c_uint.from_buffer(buf).value]


def open_by_handle(mount_fd: int, handle: bytes, flags: int) -> int:
    """Open a file by handle (needs CAP_DAC_READ_SEARCH)."""
    return _check(_libc.open_by_handle_at(mount_fd, handle, flags | os.O_CLOEXEC))
