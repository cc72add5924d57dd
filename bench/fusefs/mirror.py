"""The mirror file system: FUSE operations answered from a source directory.

Nodes are keyed by the backing file's (st_dev, st_ino), plus its file handle. As root a node
keeps only that handle (name_to_handle_at) and opens it on demand, so the daemon holds no fd
per looked-up inode and its fd count reflects the fd policy alone; otherwise (or where handles
are unsupported) it holds an O_PATH fd per node, like libfuse's passthrough_hp. Either is freed
at FORGET.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from bench.fusefs import backing, device, libc, wire
from bench.fusefs import protocol as p
from bench.fusefs.backing import IO_FLAGS, BackingRegistry
from bench.fusefs.errors import MountError
from bench.fusefs.operations import Connection, Operations
from bench.fusefs.options import Options
from bench.fusefs.wire import Attr, AttrChanges, Context, Dirents, Entry, Opened
from bench.fusefs.writeback import WritebackFds

ROOT_LOOKUPS = 1 << 62
DT_DIR = 4
# Flags the daemon must not apply again when opening the backing file.
STRIP_OPEN = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC


class Node:
    """One inode of the source as the kernel knows it."""

    __slots__ = ("nodeid", "key", "nlookup", "fd", "handle", "opens", "backing_id", "backing_fd")

    def __init__(self, nodeid: int, key: tuple[int, int, bytes | None], fd: int, handle: bytes | None) -> None:
        self.nodeid = nodeid
        self.key = key
        self.nlookup = 0
        self.fd = fd  # held O_PATH fd, or -1 when `handle` is used
        self.handle = handle
        self.opens = 0
        self.backing_id = 0
        self.backing_fd = -1


def _dtype(entry: os.DirEntry) -> int:
    if entry.is_symlink():
        return stat.S_IFLNK >> 12
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR >> 12
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG >> 12
    return 0


def _timespec(time: int | str | None) -> tuple[int, int]:
    """An AttrChanges time as utimensat's (sec, nsec)."""
    if time is None:
        return 0, libc.UTIME_OMIT
    if time == wire.NOW:
        return 0, libc.UTIME_NOW
    return divmod(time, wire.NS)


def proc_path(fd: int) -> str:
    """A path that reopens `fd`'s file (works for O_PATH fds)."""
    return f"/proc/self/fd/{fd}"


class Mirror(Operations):
    """The operations over a source directory: plain mode hands out fds as fh, passthrough mode
    backing ids (bench.fusefs.backing); xattrs only with --xattr on."""

    def __init__(self, opts: Options) -> None:
        self._opts = opts
        self.fh_is_fd = not opts.passthrough  # passthrough opens hand out a backing id, no fh
        self._backing: BackingRegistry | None = None  # passthrough: made at init
        self._writeback = WritebackFds()
        self._lock = threading.Lock()
        self._ids = itertools.count(p.ROOT_ID + 1)
        self._dir_ids = itertools.count(1)
        self._dirs: dict[int, tuple[Node, list[tuple[bytes, int, int]]]] = {}
        self._as_root = os.geteuid() == 0
        if opts.passthrough:
            self._fopen = p.FOPEN_PASSTHROUGH
        else:
            self._fopen = p.FOPEN_PARALLEL_DIRECT_WRITES
            self._fopen |= p.FOPEN_KEEP_CACHE if opts.keep_cache else 0
            self._fopen |= p.FOPEN_DIRECT_IO if opts.direct_io else 0

        root_fd = os.open(opts.source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(root_fd)
        # open_by_handle_at needs a real (not O_PATH) fd on the file system as its anchor.
        self._mount_fd = os.open(opts.source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._handle_dev = st.st_dev if self._as_root and self._handles_work(root_fd) else None
        root = Node(p.ROOT_ID, (st.st_dev, st.st_ino, None), root_fd, None)
        root.nlookup = ROOT_LOOKUPS
        self.nodes: dict[int, Node] = {p.ROOT_ID: root}
        self._inodes: dict[tuple[int, int, bytes | None], Node] = {root.key: root}

    def _handles_work(self, fd: int) -> bool:
        try:
            os.close(libc.open_by_handle(self._mount_fd, libc.name_to_handle(fd), os.O_PATH))
            return True
        except OSError:
            return False

    def init(self, connection: Connection) -> None:
        """Passthrough: backing files are registered on the connection's /dev/fuse fd; one is
        registered now, so that a refusal fails the mount instead of every open."""
        if connection.flags & p.PASSTHROUGH:
            self._backing = BackingRegistry(connection.fd, self._opts.fd_policy, self._opts.cache_size)
            self._probe_backing(connection.fd)

    def _probe_backing(self, dev_fd: int) -> None:
        target = self._opts.source
        with os.scandir(self._opts.source) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    target = entry.path
                    break
        fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            device.backing_close(dev_fd, device.backing_open(dev_fd, fd))
        except OSError as exc:
            if exc.errno == errno.EISDIR:  # only a directory to probe with, and passthrough is on
                return
            why = {
                errno.EPERM: "EPERM: needs CAP_SYS_ADMIN and a negotiated PASSTHROUGH",
                errno.ELOOP: "ELOOP: the source file system is stacked too deep",
            }.get(exc.errno, f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}")
            raise MountError(f"passthrough refused by the kernel ({why})") from None
        finally:
            os.close(fd)

    def stats(self) -> dict[str, Any]:
        """Live counts for the stats file (backing ids: zero in plain mode)."""
        counts = {"nodes": len(self.nodes), "open_dirs": len(self._dirs), **dict.fromkeys(backing.STATS, 0)}
        if self._backing is not None:
            counts.update(self._backing.stats())
        return counts

    # -- inode table -------------------------------------------------------------------------

    def node(self, nodeid: int) -> Node:
        """The node the kernel calls `nodeid`."""
        try:
            return self.nodes[nodeid]
        except KeyError:
            raise OSError(errno.ESTALE, f"unknown node {nodeid}") from None

    @contextmanager
    def _pathfd(self, node: Node) -> Iterator[int]:
        """An O_PATH fd of the node, open for the duration of the block."""
        if node.fd >= 0:
            yield node.fd
            return
        fd = libc.open_by_handle(self._mount_fd, node.handle, os.O_PATH)
        try:
            yield fd
        finally:
            os.close(fd)

    def open_node(self, node: Node, flags: int) -> int:
        """A new fd of the node's file opened with `flags`."""
        if node.fd >= 0:
            return os.open(proc_path(node.fd), flags | os.O_CLOEXEC)
        return libc.open_by_handle(self._mount_fd, node.handle, flags)

    def _lookup(self, parent_fd: int, name: bytes) -> tuple[Node, Entry]:
        """Look `name` up, take one lookup reference, return the node and its entry."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            st = os.fstat(fd)
            handle = None
            if st.st_dev == self._handle_dev:
                try:
                    handle = libc.name_to_handle(fd)
                except OSError:
                    pass  # hold the O_PATH fd instead
            # An unpinned inode's number is reused as soon as it is deleted: the handle (which
            # carries the generation) tells the new file from the node of the deleted one.
            key = (st.st_dev, st.st_ino, handle)
            with self._lock:
                node = self._inodes.get(key)
                if node is None:
                    node = Node(next(self._ids), key, -1 if handle else fd, handle)
                    self.nodes[node.nodeid] = node
                    self._inodes[key] = node
                    if node.fd == fd:
                        fd = -1
                node.nlookup += 1
        finally:
            if fd >= 0:
                os.close(fd)
        return node, Entry(node.nodeid, st, self._opts.entry_timeout, self._opts.attr_timeout)

    def _attr(self, st: os.stat_result) -> Attr:
        return Attr(st, self._opts.attr_timeout)

    def _new_entry(self, ctx: Context, pfd: int, name: bytes) -> Entry:
        """Give a just-created `name` the caller's ownership; its entry."""
        if self._as_root and (ctx.uid or ctx.gid):
            os.chown(name, ctx.uid, ctx.gid, dir_fd=pfd, follow_symlinks=False)
        return self._lookup(pfd, name)[1]

    # -- names -------------------------------------------------------------------------------

    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        """One more reference on the child's node."""
        with self._pathfd(self.node(parent)) as pfd:
            return self._lookup(pfd, name)[1]

    def forget(self, ctx: Context, nodeid: int, nlookup: int) -> None:
        """Drop references; the node and its fd or backing id go at zero."""
        with self._lock:
            node = self.nodes.get(nodeid)
            if node is None:
                return
            node.nlookup -= nlookup
            if node.nlookup > 0:
                return
            del self.nodes[nodeid]
            del self._inodes[node.key]
        if node.fd >= 0:
            os.close(node.fd)
            node.fd = -1
        if self._backing is not None:
            self._backing.forget(node)

    def mknod(self, ctx: Context, parent: int, name: bytes, mode: int, rdev: int) -> Entry:
        """Fifos, sockets, devices, regular files."""
        with self._pathfd(self.node(parent)) as pfd:
            os.mknod(name, mode, rdev, dir_fd=pfd)
            return self._new_entry(ctx, pfd, name)

    def mkdir(self, ctx: Context, parent: int, name: bytes, mode: int) -> Entry:
        """MKDIR."""
        with self._pathfd(self.node(parent)) as pfd:
            os.mkdir(name, mode, dir_fd=pfd)
            return self._new_entry(ctx, pfd, name)

    def symlink(self, ctx: Context, parent: int, name: bytes, target: bytes) -> Entry:
        """SYMLINK."""
        with self._pathfd(self.node(parent)) as pfd:
            os.symlink(target, name, dir_fd=pfd)
            return self._new_entry(ctx, pfd, name)

    def link(self, ctx: Context, nodeid: int, newparent: int, newname: bytes) -> Entry:
        """A new name for an existing node."""
        with self._pathfd(self.node(nodeid)) as ofd, self._pathfd(self.node(newparent)) as pfd:
            os.link(proc_path(ofd), newname, dst_dir_fd=pfd, follow_symlinks=True)
            return self._lookup(pfd, newname)[1]

    def unlink(self, ctx: Context, parent: int, name: bytes) -> None:
        """UNLINK."""
        with self._pathfd(self.node(parent)) as pfd:
            os.unlink(name, dir_fd=pfd)

    def rmdir(self, ctx: Context, parent: int, name: bytes) -> None:
        """RMDIR."""
        with self._pathfd(self.node(parent)) as pfd:
            os.rmdir(name, dir_fd=pfd)

    def rename(self, ctx: Context, parent: int, name: bytes, newparent: int, newname: bytes, flags: int) -> None:
        """RENAME, and RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT through renameat2."""
        with self._pathfd(self.node(parent)) as ofd, self._pathfd(self.node(newparent)) as nfd:
            if flags:
                libc.renameat2(ofd, name, nfd, newname, flags)
            else:
                os.rename(name, newname, src_dir_fd=ofd, dst_dir_fd=nfd)

    # -- attributes --------------------------------------------------------------------------

    def getattr(self, ctx: Context, nodeid: int, fh: int | None) -> Attr:
        """By fh when the kernel offers one and the daemon has it."""
        if fh is not None and self._backing is None:
            return self._attr(os.fstat(fh))
        with self._pathfd(self.node(nodeid)) as fd:
            return self._attr(os.fstat(fd))

    def setattr(self, ctx: Context, nodeid: int, changes: AttrChanges, fh: int | None) -> Attr:
        """Truncate, chmod, chown, utimens (UTIME_NOW included)."""
        by_fh = fh is not None and self._backing is None
        with self._pathfd(self.node(nodeid)) as fd:
            if changes.mode is not None:
                os.chmod(proc_path(fd), stat.S_IMODE(changes.mode))
            if changes.uid is not None or changes.gid is not None:
                libc.fchown_fd(fd, -1 if changes.uid is None else changes.uid,
                               -1 if changes.gid is None else changes.gid)
            if changes.size is not None:
                if by_fh:
                    os.ftruncate(fh, changes.size)
                else:
                    os.truncate(proc_path(fd), changes.size)
            if changes.atime is not None or changes.mtime is not None:
                libc.utimens_fd(fd, _timespec(changes.atime), _timespec(changes.mtime))
            return self._attr(os.fstat(fh) if by_fh else os.fstat(fd))

    def readlink(self, ctx: Context, nodeid: int) -> bytes:
        """READLINK."""
        with self._pathfd(self.node(nodeid)) as fd:
            return os.readlink(b"", dir_fd=fd)

    def statfs(self, ctx: Context, nodeid: int) -> os.statvfs_result:
        """The source's file system."""
        with self._pathfd(self.node(nodeid)) as fd:
            return os.fstatvfs(fd)

    def access(self, ctx: Context, nodeid: int, mask: int) -> None:
        """Rarely asked: the mount uses default_permissions."""
        with self._pathfd(self.node(nodeid)) as fd:
            if not os.access(proc_path(fd), mask):
                raise OSError(errno.EACCES, "access denied")

    # -- xattrs (only with --xattr on) ---------------------------------------------------------

    @contextmanager
    def _xattr_path(self, nodeid: int) -> Iterator[str]:
        """The path the xattr calls take; ENOSYS with --xattr off, so the kernel stops asking."""
        if self._opts.xattr != "on":
            raise OSError(errno.ENOSYS, "xattrs are off")
        with self._pathfd(self.node(nodeid)) as fd:
            yield proc_path(fd)

    def getxattr(self, ctx: Context, nodeid: int, name: bytes, size: int) -> bytes:
        """GETXATTR."""
        with self._xattr_path(nodeid) as path:
            return wire.xattr_reply(os.getxattr(path, name), size)

    def listxattr(self, ctx: Context, nodeid: int, size: int) -> bytes:
        """LISTXATTR."""
        with self._xattr_path(nodeid) as path:
            return wire.xattr_reply(wire.xattr_names(os.listxattr(path)), size)

    def setxattr(self, ctx: Context, nodeid: int, name: bytes, value: bytes, flags: int) -> None:
        """SETXATTR."""
        with self._xattr_path(nodeid) as path:
            os.setxattr(path, name, value, flags)

    def removexattr(self, ctx: Context, nodeid: int, name: bytes) -> None:
        """REMOVEXATTR."""
        with self._xattr_path(nodeid) as path:
            os.removexattr(path, name)

    # -- files -------------------------------------------------------------------------------

    def _client_flags(self, flags: int) -> int:
        flags &= ~STRIP_OPEN
        if self._opts.writeback_cache:
            # The kernel may read to fill partial pages and does its own O_APPEND positioning.
            flags &= ~os.O_APPEND
            if flags & os.O_ACCMODE == os.O_WRONLY:
                flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        return flags

    def _opened(self, node: Node, flags: int, fd: int = -1) -> Opened:
        """Plain mode hands the fd (`fd`, or one opened now) over as fh; passthrough a backing
        id. The open count taken with the id keeps it registered until the matching RELEASE:
        the reply carrying it must reach the kernel before any BACKING_CLOSE of it."""
        if self._backing is None:
            fh = fd if fd >= 0 else self.open_node(node, flags)
            self._writeback.opened(fh, flags)
            return Opened(fh, self._fopen)
        backing_id = self._backing.acquire(node, lambda: self.open_node(node, flags & IO_FLAGS), fd)
        return Opened(0, self._fopen, backing_id)

    def open(self, ctx: Context, nodeid: int, flags: int) -> Opened:
        """With the client's flags (O_DIRECT included)."""
        return self._opened(self.node(nodeid), self._client_flags(flags))

    def create(self, ctx: Context, parent: int, name: bytes, mode: int, flags: int) -> tuple[Entry, Opened]:
        """Make and open a file."""
        flags = self._client_flags(flags) | (flags & (os.O_EXCL | os.O_TRUNC))
        with self._pathfd(self.node(parent)) as pfd:
            fd = os.open(name, flags | os.O_CREAT | os.O_CLOEXEC, mode, dir_fd=pfd)
            try:
                if self._as_root and (ctx.uid or ctx.gid):
                    os.fchown(fd, ctx.uid, ctx.gid)
                node, entry = self._lookup(pfd, name)
            except OSError:
                os.close(fd)
                raise
        try:
            return entry, self._opened(node, flags & ~(os.O_EXCL | os.O_TRUNC), fd)
        except OSError:
            self.forget(ctx, node.nodeid, 1)  # the error reply hands the kernel no reference
            raise

    @contextmanager
    def _file(self, nodeid: int, fh: int, flags: int) -> Iterator[int]:
        """The plain-mode fh, or a fresh fd for the block in passthrough mode (no fh)."""
        if self._backing is None:
            yield fh
            return
        fd = self.open_node(self.node(nodeid), flags)
        try:
            yield fd
        finally:
            os.close(fd)

    def read(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> bytes:
        """Outside the worker's fast path (passthrough mode: not expected at all)."""
        with self._file(nodeid, fh, os.O_RDONLY) as fd:
            return os.pread(fd, size, offset)

    def write(self, ctx: Context, nodeid: int, fh: int, offset: int, data: memoryview) -> int:
        """Outside the worker's fast path (passthrough mode: not expected at all)."""
        with self._file(nodeid, fh, os.O_WRONLY) as fd:
            return os.pwrite(fd, data, offset)

    def writeback_fd(self, fh: int) -> int:
        """The fh, or its buffered twin when it was opened O_DIRECT or O_APPEND (fusefs.writeback)."""
        return self._writeback.fd(fh)

    def flush(self, ctx: Context, nodeid: int, fh: int) -> None:
        """Closing a dup releases the client's POSIX locks and reports close errors."""
        if self._backing is None:
            os.close(os.dup(fh))

    def release(self, ctx: Context, nodeid: int, fh: int) -> None:
        """Close the fh (plain) or drop one open of the backing id (passthrough)."""
        if self._backing is None:
            self._writeback.closing(fh)
            os.close(fh)
        else:
            self._backing.release(self.node(nodeid))

    def fsync(self, ctx: Context, nodeid: int, fh: int, datasync: bool) -> None:
        """fsync, or fdatasync when asked."""
        with self._file(nodeid, fh, os.O_RDONLY) as fd:
            (os.fdatasync if datasync else os.fsync)(fd)

    def fallocate(self, ctx: Context, nodeid: int, fh: int, offset: int, length: int, mode: int) -> None:
        """FALLOCATE with its mode."""
        with self._file(nodeid, fh, os.O_WRONLY) as fd:
            libc.fallocate(fd, mode, offset, length)

    def lseek(self, ctx: Context, nodeid: int, fh: int, offset: int, whence: int) -> int:
        """SEEK_DATA / SEEK_HOLE."""
        with self._file(nodeid, fh, os.O_RDONLY) as fd:
            return os.lseek(fd, offset, whence)

    # -- directories -------------------------------------------------------------------------

    def _listing(self, node: Node) -> list[tuple[bytes, int, int]]:
        with self._pathfd(node) as fd:
            ino = os.fstat(fd).st_ino
            entries = [(b".", ino, DT_DIR), (b"..", ino, DT_DIR)]
            with os.scandir(os.fsencode(proc_path(fd))) as it:
                entries.extend((e.name, e.inode(), _dtype(e)) for e in it)
        return entries

    def opendir(self, ctx: Context, nodeid: int, flags: int) -> Opened:
        """Snapshot the listing; offsets index into it."""
        node = self.node(nodeid)
        dir_id = next(self._dir_ids)
        self._dirs[dir_id] = (node, self._listing(node))
        return Opened(dir_id)

    def _readdir(self, fh: int, offset: int, size: int, plus: bool) -> Dirents:
        node, entries = self._dirs[fh]
        if offset == 0:  # rewinddir: see the directory as it is now
            entries = self._listing(node)
            self._dirs[fh] = (node, entries)
        out = Dirents(size, plus)
        with self._pathfd(node) as pfd:
            for index in range(offset, len(entries)):
                name, ino, dtype = entries[index]
                if not out.fits(name):
                    break
                entry = None
                if plus and name not in (b".", b".."):
                    try:
                        entry = self._lookup(pfd, name)[1]
                    except OSError:
                        continue  # removed since the snapshot
                out.add(name, ino, dtype, index + 1, entry)
        return out

    def readdir(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> Dirents:
        """READDIR."""
        return self._readdir(fh, offset, size, plus=False)

    def readdirplus(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> Dirents:
        """Entries with attributes; each takes a lookup reference."""
        return self._readdir(fh, offset, size, plus=True)

    def releasedir(self, ctx: Context, nodeid: int, fh: int) -> None:
        """RELEASEDIR."""
        self._dirs.pop(fh, None)

    def fsyncdir(self, ctx: Context, nodeid: int, fh: int, datasync: bool) -> None:
        """FSYNCDIR."""
        fd = self.open_node(self.node(nodeid), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
