"""The one ctypes handle on the C library: syscalls the os module lacks, by name and per CPU
architecture, and one way to turn a failed call into an OSError.

Used by the server (mount, clone, AIO, renameat2, handles) and by the rest of fusebench
(unmount, BPF request counting), so there is one errno rule and one syscall table.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
MAX_HANDLE_SZ = 128

# Syscalls without a C library wrapper, per architecture() (arch/x86/entry/syscalls/syscall_64.tbl,
# include/uapi/asm-generic/unistd.h for arm64; tests/test_fusefs_libc.py checks them against the
# installed headers). The ioctl numbers of protocol.py and tracing.py use the asm-generic
# encoding, which every architecture here shares.
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"io_setup": 206, "io_destroy": 207, "io_getevents": 208, "io_submit": 209,
               "perf_event_open": 298, "bpf": 321,
               "io_uring_setup": 425, "io_uring_enter": 426},
    "aarch64": {"io_setup": 0, "io_destroy": 1, "io_submit": 2, "io_getevents": 4,
                "perf_event_open": 241, "bpf": 280,
                "io_uring_setup": 425, "io_uring_enter": 426},
}

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
libc.fchownat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_int]
libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_int), ctypes.c_int]
libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]


def check(result: int, what: str = "") -> int:
    """`result` when >= 0; otherwise the call's errno as an OSError (prefixed with `what`)."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}" if what else os.strerror(err))
    return result


class UnknownSyscall(OSError):
    """A syscall whose number fusebench does not know on this CPU architecture (errno ENOSYS)."""


def architecture() -> str:
    """The syscall ABI of this process: `uname -m`, with the pointer width when it is not 64
    bits (a 32-bit process on a 64-bit kernel numbers its syscalls otherwise)."""
    bits = ctypes.sizeof(ctypes.c_void_p) * 8
    return platform.machine() if bits == 64 else f"{platform.machine()}/{bits}-bit"


def syscall_number(name: str) -> int:
    """The number of syscall `name` on this CPU architecture; UnknownSyscall names it otherwise."""
    arch = architecture()
    try:
        return SYSCALLS[arch][name]
    except KeyError:
        raise UnknownSyscall(errno.ENOSYS, f"{name}: syscall number unknown on this CPU architecture ({arch}; "
                             f"fusebench knows {', '.join(SYSCALLS)})") from None


def syscall(name: str, *args: int) -> int:
    """A raw syscall by name with integer (or address) arguments; raises OSError naming it."""
    return check(libc.syscall(ctypes.c_long(syscall_number(name)), *(ctypes.c_long(a) for a in args)), name)


def mount(source: str, target: str, fstype: str, flags: int, data: str | None) -> None:
    """mount(2)."""
    encoded = data.encode() if data is not None else None
    check(libc.mount(os.fsencode(source), os.fsencode(target), os.fsencode(fstype), flags, encoded),
          f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    check(libc.umount2(os.fsencode(target), flags), f"umount {target}")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def renameat2(olddir: int, old: bytes, newdir: int, new: bytes, flags: int) -> None:
    """rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT flags."""
    check(libc.renameat2(olddir, old, newdir, new, flags))


def fchown_fd(fd: int, uid: int, gid: int) -> None:
    """chown an O_PATH fd itself (symlinks included); -1 leaves an id unchanged."""
    check(libc.fchownat(fd, b"", uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))


def utimens_fd(fd: int, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
    """Set times of an O_PATH fd's file; each time is (sec, nsec), nsec may be UTIME_NOW/UTIME_OMIT."""
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    check(libc.utimensat(fd, b"", ctypes.addressof(times), AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with its mode (keep size, punch hole, ...)."""
    check(libc.fallocate(fd, mode, offset, length))


def name_to_handle(fd: int) -> bytes:
    """The file handle (struct file_handle, as bytes) of the file an O_PATH fd refers to."""
    buf = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    ctypes.c_uint.from_buffer(buf).value = MAX_HANDLE_SZ
    mount_id = ctypes.c_int()
    check(libc.name_to_handle_at(fd, b"", buf, ctypes.byref(mount_id), AT_EMPTY_PATH))
    return buf.raw[: 8 + ctypes.c_uint.from_buffer(buf).value]


def open_by_handle(mount_fd: int, handle: bytes, flags: int) -> int:
    """Open a file by handle (needs CAP_DAC_READ_SEARCH)."""
    return check(libc.open_by_handle_at(mount_fd, handle, flags | os.O_CLOEXEC))
