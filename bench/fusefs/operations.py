"""The operations a FUSE file system implements, as the server calls them (in the spirit of
libfuse's lowlevel API and pyfuse3): one method per request kind, given the request's
`Context` and its decoded arguments, returning what the reply carries. Whatever a file system
does not define answers ENOSYS, which for most requests makes the kernel stop asking.

A method raises OSError to answer with its errno. One that returns an `Entry` hands the kernel
a lookup reference (undone with `forget`), one that returns an `Opened` an open (undone with
`release` or `releasedir`) and `readdirplus` a reference per entry: the server gives them back
itself when the kernel no longer wants the reply (the request was interrupted).
"""

from __future__ import annotations

import errno
import os
from typing import Any, NamedTuple

from bench.fusefs.wire import Attr, AttrChanges, Context, Dirents, Entry, Opened


class Connection(NamedTuple):
    """What a file system may use of its mounted connection, once INIT is answered."""

    fd: int  # the connection's first /dev/fuse fd: FUSE_DEV_IOC_BACKING_OPEN/CLOSE go to it
    flags: int  # the INIT flags agreed with the kernel


def _enosys() -> OSError:
    return OSError(errno.ENOSYS, "not implemented")


class Operations:
    """The base file system: every request answers ENOSYS, but FORGET, BATCH_FORGET (nothing
    to undo) and DESTROY (success)."""

    # True when the fh that open and create return is an fd of the file's data, which the
    # server may then read and write itself (libfuse's FUSE_BUF_IS_FD): the plain-mode fast path.
    fh_is_fd = False

    def init(self, connection: Connection) -> None:
        """Called once INIT is answered, before any other request is read; raising MountError
        (bench.fusefs.errors) refuses the mount."""

    def stats(self) -> dict[str, Any]:
        """Live figures for the stats file (docs/INTERNALS.md), merged into the server's."""
        return {}

    # -- nodes ---------------------------------------------------------------------------------

    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        """The child `name` of directory `parent`."""
        raise _enosys()

    def forget(self, ctx: Context, nodeid: int, nlookup: int) -> None:
        """The kernel drops `nlookup` lookup references of `nodeid` (no reply)."""

    def batch_forget(self, ctx: Context, forgets: list[tuple[int, int]]) -> None:
        """`forget` for each (nodeid, nlookup)."""
        for nodeid, nlookup in forgets:
            self.forget(ctx, nodeid, nlookup)

    def getattr(self, ctx: Context, nodeid: int, fh: int | None) -> Attr:
        """Attributes of `nodeid` (`fh`: of the open file the caller has, if any)."""
        raise _enosys()

    def setattr(self, ctx: Context, nodeid: int, changes: AttrChanges, fh: int | None) -> Attr:
        """Apply `changes` (truncate, chmod, chown, utimens); the attributes after them."""
        raise _enosys()

    def readlink(self, ctx: Context, nodeid: int) -> bytes:
        """A symlink's target."""
        raise _enosys()

    def statfs(self, ctx: Context, nodeid: int) -> os.statvfs_result:
        """The file system's statvfs."""
        raise _enosys()

    def access(self, ctx: Context, nodeid: int, mask: int) -> None:
        """Check access (R_OK, W_OK, X_OK) for the caller."""
        raise _enosys()

    # -- names ---------------------------------------------------------------------------------

    def mknod(self, ctx: Context, parent: int, name: bytes, mode: int, rdev: int) -> Entry:
        """Make a node (fifo, socket, device, regular file)."""
        raise _enosys()

    def mkdir(self, ctx: Context, parent: int, name: bytes, mode: int) -> Entry:
        """Make a directory."""
        raise _enosys()

    def symlink(self, ctx: Context, parent: int, name: bytes, target: bytes) -> Entry:
        """Make a symlink to `target`."""
        raise _enosys()

    def link(self, ctx: Context, nodeid: int, newparent: int, newname: bytes) -> Entry:
        """Give `nodeid` a new name."""
        raise _enosys()

    def unlink(self, ctx: Context, parent: int, name: bytes) -> None:
        """Remove a name."""
        raise _enosys()

    def rmdir(self, ctx: Context, parent: int, name: bytes) -> None:
        """Remove an empty directory."""
        raise _enosys()

    def rename(self, ctx: Context, parent: int, name: bytes, newparent: int, newname: bytes, flags: int) -> None:
        """Rename, with renameat2's RENAME_* `flags` (0 for a plain RENAME)."""
        raise _enosys()

    # -- xattrs --------------------------------------------------------------------------------

    def getxattr(self, ctx: Context, nodeid: int, name: bytes, size: int) -> bytes:
        """An xattr's value for a caller's buffer of `size` (wire.xattr_reply)."""
        raise _enosys()

    def listxattr(self, ctx: Context, nodeid: int, size: int) -> bytes:
        """The xattr names for a caller's buffer of `size` (wire.xattr_reply, wire.xattr_names)."""
        raise _enosys()

    def setxattr(self, ctx: Context, nodeid: int, name: bytes, value: bytes, flags: int) -> None:
        """Set an xattr (XATTR_CREATE / XATTR_REPLACE `flags`)."""
        raise _enosys()

    def removexattr(self, ctx: Context, nodeid: int, name: bytes) -> None:
        """Remove an xattr."""
        raise _enosys()

    # -- files ---------------------------------------------------------------------------------

    def open(self, ctx: Context, nodeid: int, flags: int) -> Opened:
        """Open a file with the caller's open(2) `flags`."""
        raise _enosys()

    def create(self, ctx: Context, parent: int, name: bytes, mode: int, flags: int) -> tuple[Entry, Opened]:
        """Make and open a file."""
        raise _enosys()

    def read(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`."""
        raise _enosys()

    def write(self, ctx: Context, nodeid: int, fh: int, offset: int, data: memoryview) -> int:
        """Write `data` at `offset`; how many bytes were written."""
        raise _enosys()

    def writeback_fd(self, fh: int) -> int:
        """With `fh_is_fd`: the fd that a write of the kernel's page cache (FUSE_WRITE_CACHE,
        its fh guessed) to `fh` goes to."""
        return fh

    def flush(self, ctx: Context, nodeid: int, fh: int) -> None:
        """A close(2) of a file descriptor of the open file."""
        raise _enosys()

    def release(self, ctx: Context, nodeid: int, fh: int) -> None:
        """The open file's last close (no error reaches the caller)."""
        raise _enosys()

    def fsync(self, ctx: Context, nodeid: int, fh: int, datasync: bool) -> None:
        """fsync(2), or fdatasync(2) with `datasync`."""
        raise _enosys()

    def fallocate(self, ctx: Context, nodeid: int, fh: int, offset: int, length: int, mode: int) -> None:
        """fallocate(2) with its mode."""
        raise _enosys()

    def lseek(self, ctx: Context, nodeid: int, fh: int, offset: int, whence: int) -> int:
        """SEEK_DATA / SEEK_HOLE: the offset found."""
        raise _enosys()

    # -- directories ---------------------------------------------------------------------------

    def opendir(self, ctx: Context, nodeid: int, flags: int) -> Opened:
        """Open a directory."""
        raise _enosys()

    def readdir(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> Dirents:
        """Entries from `offset` on, as many as fit in `Dirents(size)`."""
        raise _enosys()

    def readdirplus(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> Dirents:
        """`readdir` with each entry's `Entry` (`Dirents(size, plus=True)`): a lookup reference
        for each entry that fits, and only for those."""
        raise _enosys()

    def releasedir(self, ctx: Context, nodeid: int, fh: int) -> None:
        """The open directory's last close."""
        raise _enosys()

    def fsyncdir(self, ctx: Context, nodeid: int, fh: int, datasync: bool) -> None:
        """fsync(2) of a directory."""
        raise _enosys()

    def destroy(self, ctx: Context) -> None:
        """The connection is going away (fuseblk only)."""
