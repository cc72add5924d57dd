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
from typing import Callable, Iterator

from bench.fusefs import libc
from bench.fusefs import protocol as p
from bench.fusefs.protocol import Opcode
from bench.fusefs.backing import IO_FLAGS, BackingRegistry
from bench.fusefs.options import Options

NS = 1_000_000_000
ROOT_LOOKUPS = 1 << 62
DT_DIR = 4
# Flags the daemon must not apply again when opening the backing file.
STRIP_OPEN = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC

Handler = Callable[[int, p.InHeader, bytes], "bytes | None"]


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


def _split(seconds: float) -> tuple[int, int]:
    whole = int(seconds)
    return whole, int((seconds - whole) * NS)


def _encode_dev(dev: int) -> int:
    """The kernel's new_encode_dev(), which FUSE uses for rdev."""
    major, minor = os.major(dev), os.minor(dev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def _decode_dev(dev: int) -> int:
    return os.makedev((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))


def attr_tuple(st: os.stat_result) -> tuple[int, ...]:
    """fuse_attr fields of a stat result."""
    a, an = divmod(st.st_atime_ns, NS)
    m, mn = divmod(st.st_mtime_ns, NS)
    c, cn = divmod(st.st_ctime_ns, NS)
    return (st.st_ino, st.st_size, st.st_blocks, a, m, c, an, mn, cn, st.st_mode, st.st_nlink,
            st.st_uid, st.st_gid, _encode_dev(st.st_rdev), st.st_blksize, 0)


def _name(body: bytes) -> bytes:
    return body[: body.index(b"\0")]


def _dtype(entry: os.DirEntry) -> int:
    if entry.is_symlink():
        return stat.S_IFLNK >> 12
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR >> 12
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG >> 12
    return 0


def proc_path(fd: int) -> str:
    """A path that reopens `fd`'s file (works for O_PATH fds)."""
    return f"/proc/self/fd/{fd}"


class Mirror:
    """FUSE operation handlers over a source directory; `handlers` is indexed by opcode."""

    def __init__(self, opts: Options, backing: BackingRegistry | None,
                 reply: Callable[[int, int, bytes], bool]) -> None:
        self._opts = opts
        self._backing = backing
        self._reply = reply
        self._lock = threading.Lock()
        self._ids = itertools.count(p.ROOT_ID + 1)
        self._dir_ids = itertools.count(1)
        self._dirs: dict[int, tuple[Node, list[tuple[bytes, int, int]]]] = {}
        self._as_root = os.geteuid() == 0
        self._entry_valid = _split(opts.entry_timeout)
        self._attr_valid = _split(opts.attr_timeout)
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

        self.handlers: list[Handler] = [self._enosys] * p.MAX_OPCODE
        ops: dict[int, Handler] = {
            Opcode.LOOKUP: self.lookup, Opcode.FORGET: self.forget, Opcode.BATCH_FORGET: self.batch_forget,
            Opcode.GETATTR: self.getattr, Opcode.SETATTR: self.setattr, Opcode.READLINK: self.readlink,
            Opcode.SYMLINK: self.symlink, Opcode.MKNOD: self.mknod, Opcode.MKDIR: self.mkdir,
            Opcode.UNLINK: self.unlink, Opcode.RMDIR: self.rmdir, Opcode.RENAME: self.rename,
            Opcode.RENAME2: self.rename2, Opcode.LINK: self.link, Opcode.OPEN: self.open, Opcode.CREATE: self.create,
            Opcode.READ: self.read, Opcode.WRITE: self.write, Opcode.FLUSH: self.flush, Opcode.FSYNC: self.fsync,
            Opcode.RELEASE: self.release, Opcode.OPENDIR: self.opendir, Opcode.READDIR: self.readdir,
            Opcode.READDIRPLUS: self.readdirplus, Opcode.RELEASEDIR: self.releasedir,
            Opcode.FSYNCDIR: self.fsyncdir, Opcode.STATFS: self.statfs, Opcode.ACCESS: self.access,
            Opcode.FALLOCATE: self.fallocate, Opcode.LSEEK: self.lseek, Opcode.INTERRUPT: self._no_reply,
            Opcode.DESTROY: self._empty,
        }
        if opts.xattr == "on":
            ops.update({Opcode.GETXATTR: self.getxattr, Opcode.SETXATTR: self.setxattr,
                        Opcode.LISTXATTR: self.listxattr, Opcode.REMOVEXATTR: self.removexattr})
        for opcode, handler in ops.items():
            self.handlers[opcode] = handler

    def _handles_work(self, fd: int) -> bool:
        try:
            os.close(libc.open_by_handle(self._mount_fd, libc.name_to_handle(fd), os.O_PATH))
            return True
        except OSError:
            return False

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

    def _lookup(self, parent_fd: int, name: bytes) -> tuple[Node, bytes]:
        """Look `name` up, take one lookup reference, return the node and its fuse_entry_out."""
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
        return node, self._entry(node.nodeid, st)

    def _entry(self, nodeid: int, st: os.stat_result) -> bytes:
        return p.ENTRY_OUT.pack(nodeid, 0, self._entry_valid[0], self._attr_valid[0],
                                self._entry_valid[1], self._attr_valid[1], *attr_tuple(st))

    def _attr(self, st: os.stat_result) -> bytes:
        return p.ATTR_OUT.pack(self._attr_valid[0], self._attr_valid[1], 0, *attr_tuple(st))

    def _forget(self, nodeid: int, count: int) -> None:
        with self._lock:
            node = self.nodes.get(nodeid)
            if node is None:
                return
            node.nlookup -= count
            if node.nlookup > 0:
                return
            del self.nodes[nodeid]
            del self._inodes[node.key]
        if node.fd >= 0:
            os.close(node.fd)
            node.fd = -1
        if self._backing is not None:
            self._backing.forget(node)

    def _reply_entry(self, dev_fd: int, h: p.InHeader, node: Node, body: bytes) -> None:
        """Send a reply that hands the kernel a lookup reference; take it back if undelivered."""
        if not self._reply(dev_fd, h.unique, body):
            self._forget(node.nodeid, 1)

    def _new_entry(self, dev_fd: int, h: p.InHeader, pfd: int, name: bytes) -> None:
        """Give a just-created `name` the caller's ownership, then reply with its entry."""
        if self._as_root and (h.uid or h.gid):
            os.chown(name, h.uid, h.gid, dir_fd=pfd, follow_symlinks=False)
        node, entry = self._lookup(pfd, name)
        self._reply_entry(dev_fd, h, node, entry)

    def stats(self) -> dict[str, int]:
        """Live counts for the stats file."""
        return {"nodes": len(self.nodes), "open_dirs": len(self._dirs)}

    # -- generic -----------------------------------------------------------------------------

    @staticmethod
    def _enosys(dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        raise OSError(errno.ENOSYS, "not implemented")

    @staticmethod
    def _no_reply(dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        return None

    @staticmethod
    def _empty(dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        return b""

    # -- names -------------------------------------------------------------------------------

    def lookup(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """LOOKUP: one more reference on the child's node."""
        with self._pathfd(self.node(h.nodeid)) as pfd:
            node, entry = self._lookup(pfd, _name(body))
        self._reply_entry(dev_fd, h, node, entry)
        return None

    def forget(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """FORGET: drop references; the node and its fd or backing id go at zero."""
        self._forget(h.nodeid, p.FORGET_IN.unpack_from(body)[0])
        return None

    def batch_forget(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """BATCH_FORGET: FORGET for many nodes."""
        count = p.BATCH_FORGET_IN.unpack_from(body)[0]
        for nodeid, nlookup in p.FORGET_ONE.iter_unpack(body[8 : 8 + 16 * count]):
            self._forget(nodeid, nlookup)
        return None

    def mknod(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """MKNOD: fifos, sockets, devices, regular files."""
        mode, rdev, _ = p.MKNOD_IN.unpack_from(body)
        name = _name(body[16:])
        with self._pathfd(self.node(h.nodeid)) as pfd:
            os.mknod(name, mode, _decode_dev(rdev), dir_fd=pfd)
            self._new_entry(dev_fd, h, pfd, name)
        return None

    def mkdir(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """MKDIR."""
        mode, _ = p.MKDIR_IN.unpack_from(body)
        name = _name(body[8:])
        with self._pathfd(self.node(h.nodeid)) as pfd:
            os.mkdir(name, mode, dir_fd=pfd)
            self._new_entry(dev_fd, h, pfd, name)
        return None

    def symlink(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """SYMLINK: body is name, then target."""
        name, target = body.split(b"\0")[:2]
        with self._pathfd(self.node(h.nodeid)) as pfd:
            os.symlink(target, name, dir_fd=pfd)
            self._new_entry(dev_fd, h, pfd, name)
        return None

    def link(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """LINK: a new name for an existing node."""
        old = self.node(p.LINK_IN.unpack_from(body)[0])
        name = _name(body[8:])
        with self._pathfd(old) as ofd, self._pathfd(self.node(h.nodeid)) as pfd:
            os.link(proc_path(ofd), name, dst_dir_fd=pfd, follow_symlinks=True)
            node, entry = self._lookup(pfd, name)
        self._reply_entry(dev_fd, h, node, entry)
        return None

    def unlink(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """UNLINK."""
        with self._pathfd(self.node(h.nodeid)) as pfd:
            os.unlink(_name(body), dir_fd=pfd)
        return b""

    def rmdir(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """RMDIR."""
        with self._pathfd(self.node(h.nodeid)) as pfd:
            os.rmdir(_name(body), dir_fd=pfd)
        return b""

    def _rename(self, h: p.InHeader, newdir: int, names: bytes, flags: int) -> bytes:
        old, new = names.split(b"\0")[:2]
        with self._pathfd(self.node(h.nodeid)) as ofd, self._pathfd(self.node(newdir)) as nfd:
            if flags:
                libc.renameat2(ofd, old, nfd, new, flags)
            else:
                os.rename(old, new, src_dir_fd=ofd, dst_dir_fd=nfd)
        return b""

    def rename(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """RENAME."""
        return self._rename(h, p.RENAME_IN.unpack_from(body)[0], body[8:], 0)

    def rename2(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """RENAME2: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT through renameat2."""
        newdir, flags, _ = p.RENAME2_IN.unpack_from(body)
        return self._rename(h, newdir, body[16:], flags)

    # -- attributes --------------------------------------------------------------------------

    def getattr(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """GETATTR (by fh when the kernel offers one and the daemon has it)."""
        flags, _, fh = p.GETATTR_IN.unpack_from(body)
        if flags & p.GETATTR_FH and not self._opts.passthrough:
            return self._attr(os.fstat(fh))
        with self._pathfd(self.node(h.nodeid)) as fd:
            return self._attr(os.fstat(fd))

    def setattr(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """SETATTR: truncate, chmod, chown, utimens (UTIME_NOW included)."""
        (valid, _, fh, size, _, atime, mtime, _, atimens, mtimens, _, mode, _, uid, gid,
         _) = p.SETATTR_IN.unpack_from(body)
        node = self.node(h.nodeid)
        by_fh = valid & p.FATTR_FH and not self._opts.passthrough
        with self._pathfd(node) as fd:
            if valid & p.FATTR_MODE:
                os.chmod(proc_path(fd), stat.S_IMODE(mode))
            if valid & (p.FATTR_UID | p.FATTR_GID):
                libc.fchown_fd(fd, uid if valid & p.FATTR_UID else -1, gid if valid & p.FATTR_GID else -1)
            if valid & p.FATTR_SIZE:
                if by_fh:
                    os.ftruncate(fh, size)
                else:
                    os.truncate(proc_path(fd), size)
            if valid & (p.FATTR_ATIME | p.FATTR_MTIME | p.FATTR_ATIME_NOW | p.FATTR_MTIME_NOW):
                libc.utimens_fd(fd, self._time(valid, p.FATTR_ATIME, p.FATTR_ATIME_NOW, atime, atimens),
                                self._time(valid, p.FATTR_MTIME, p.FATTR_MTIME_NOW, mtime, mtimens))
            return self._attr(os.fstat(fh) if by_fh else os.fstat(fd))

    @staticmethod
    def _time(valid: int, bit: int, now_bit: int, sec: int, nsec: int) -> tuple[int, int]:
        if valid & now_bit:
            return 0, libc.UTIME_NOW
        if valid & bit:
            return sec, nsec
        return 0, libc.UTIME_OMIT

    def readlink(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """READLINK."""
        with self._pathfd(self.node(h.nodeid)) as fd:
            return os.readlink(b"", dir_fd=fd)

    def statfs(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """STATFS of the source's file system."""
        with self._pathfd(self.node(h.nodeid)) as fd:
            s = os.fstatvfs(fd)
        return p.STATFS_OUT.pack(s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree,
                                 s.f_bsize, s.f_namemax, s.f_frsize, 0)

    def access(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """ACCESS (rarely sent: the mount uses default_permissions)."""
        with self._pathfd(self.node(h.nodeid)) as fd:
            if not os.access(proc_path(fd), p.ACCESS_IN.unpack_from(body)[0]):
                raise OSError(errno.EACCES, "access denied")
        return b""

    # -- xattrs (only with --xattr on) ---------------------------------------------------------

    @staticmethod
    def _sized(data: bytes, size: int) -> bytes:
        if size == 0:
            return p.GETXATTR_OUT.pack(len(data), 0)
        if len(data) > size:
            raise OSError(errno.ERANGE, "buffer too small")
        return data

    def getxattr(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """GETXATTR."""
        size, _ = p.GETXATTR_IN.unpack_from(body)
        with self._pathfd(self.node(h.nodeid)) as fd:
            return self._sized(os.getxattr(proc_path(fd), _name(body[8:])), size)

    def listxattr(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """LISTXATTR."""
        size, _ = p.GETXATTR_IN.unpack_from(body)
        with self._pathfd(self.node(h.nodeid)) as fd:
            names = os.listxattr(proc_path(fd))
        return self._sized(b"".join(os.fsencode(n) + b"\0" for n in names), size)

    def setxattr(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """SETXATTR."""
        size, flags = p.SETXATTR_IN.unpack_from(body)
        name = _name(body[8:])
        start = 8 + len(name) + 1
        with self._pathfd(self.node(h.nodeid)) as fd:
            os.setxattr(proc_path(fd), name, body[start : start + size], flags)
        return b""

    def removexattr(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """REMOVEXATTR."""
        with self._pathfd(self.node(h.nodeid)) as fd:
            os.removexattr(proc_path(fd), _name(body))
        return b""

    # -- files -------------------------------------------------------------------------------

    def _client_flags(self, flags: int) -> int:
        flags &= ~STRIP_OPEN
        if self._opts.writeback_cache:
            # The kernel may read to fill partial pages and does its own O_APPEND positioning.
            flags &= ~os.O_APPEND
            if flags & os.O_ACCMODE == os.O_WRONLY:
                flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        return flags

    def _open_reply(self, dev_fd: int, h: p.InHeader, node: Node, flags: int, fd: int,
                    entry: bytes = b"") -> None:
        """Reply OPEN/CREATE: plain hands the fd over as fh; passthrough a backing id."""
        if self._backing is None:
            if not self._reply(dev_fd, h.unique, entry + p.OPEN_OUT.pack(fd, self._fopen, 0)):
                os.close(fd)
                if entry:
                    self._forget(node.nodeid, 1)
            return
        backing_id = self._backing.acquire(node, lambda: self.open_node(node, flags & IO_FLAGS), fd)
        # The reply must reach the kernel before any BACKING_CLOSE of this id: the open count
        # taken above keeps it registered until the matching RELEASE (or the undo below).
        if not self._reply(dev_fd, h.unique, entry + p.OPEN_OUT.pack(0, self._fopen, backing_id)):
            self._backing.release(node)
            if entry:
                self._forget(node.nodeid, 1)

    def open(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """OPEN with the client's flags (O_DIRECT included)."""
        node = self.node(h.nodeid)
        flags = self._client_flags(p.OPEN_IN.unpack_from(body)[0])
        fd = -1 if self._backing is not None else self.open_node(node, flags)
        self._open_reply(dev_fd, h, node, flags, fd)
        return None

    def create(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """CREATE: make and open a file, returning its entry and the open reply."""
        flags, mode, _, _ = p.CREATE_IN.unpack_from(body)
        name = _name(body[16:])
        flags = self._client_flags(flags) | (flags & (os.O_EXCL | os.O_TRUNC))
        with self._pathfd(self.node(h.nodeid)) as pfd:
            fd = os.open(name, flags | os.O_CREAT | os.O_CLOEXEC, mode, dir_fd=pfd)
            try:
                if self._as_root and (h.uid or h.gid):
                    os.fchown(fd, h.uid, h.gid)
                node, entry = self._lookup(pfd, name)
            except OSError:
                os.close(fd)
                raise
        self._open_reply(dev_fd, h, node, flags & ~(os.O_EXCL | os.O_TRUNC), fd, entry)
        return None

    def _io_fd(self, h: p.InHeader, fh: int, flags: int) -> tuple[int, bool]:
        """(fd, must close): the plain-mode fh, or a fresh fd in passthrough mode (no fh)."""
        if self._backing is None:
            return fh, False
        return self.open_node(self.node(h.nodeid), flags), True

    @contextmanager
    def _file(self, h: p.InHeader, fh: int, flags: int) -> Iterator[int]:
        fd, temporary = self._io_fd(h, fh, flags)
        try:
            yield fd
        finally:
            if temporary:
                os.close(fd)

    def read(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """READ outside the worker's fast path (passthrough mode: not expected at all)."""
        fh, offset, size, _ = p.READ_IN.unpack_from(body)
        with self._file(h, fh, os.O_RDONLY) as fd:
            return os.pread(fd, size, offset)

    def write(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """WRITE outside the worker's fast path (passthrough mode: not expected at all)."""
        fh, offset, size, _ = p.WRITE_IN.unpack_from(body)
        with self._file(h, fh, os.O_WRONLY) as fd:
            return p.WRITE_OUT.pack(os.pwrite(fd, body[p.WRITE_IN_SIZE : p.WRITE_IN_SIZE + size], offset), 0)

    def flush(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """FLUSH: closing a dup releases the client's POSIX locks and reports close errors."""
        if self._backing is None:
            os.close(os.dup(p.RELEASE_IN.unpack_from(body)[0]))
        return b""

    def release(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """RELEASE: close the fh (plain) or drop one open of the backing id (passthrough)."""
        if self._backing is None:
            os.close(p.RELEASE_IN.unpack_from(body)[0])
        else:
            self._backing.release(self.node(h.nodeid))
        return b""

    def fsync(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """FSYNC (fdatasync when asked)."""
        fh, flags = p.FSYNC_IN.unpack_from(body)
        with self._file(h, fh, os.O_RDONLY) as fd:
            (os.fdatasync if flags & p.FSYNC_FDATASYNC else os.fsync)(fd)
        return b""

    def fallocate(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """FALLOCATE with its mode."""
        fh, offset, length, mode = p.FALLOCATE_IN.unpack_from(body)
        with self._file(h, fh, os.O_WRONLY) as fd:
            libc.fallocate(fd, mode, offset, length)
        return b""

    def lseek(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """LSEEK (SEEK_DATA / SEEK_HOLE)."""
        fh, offset, whence = p.LSEEK_IN.unpack_from(body)
        with self._file(h, fh, os.O_RDONLY) as fd:
            return p.LSEEK_OUT.pack(os.lseek(fd, offset, whence))

    # -- directories -------------------------------------------------------------------------

    def _listing(self, node: Node) -> list[tuple[bytes, int, int]]:
        with self._pathfd(node) as fd:
            ino = os.fstat(fd).st_ino
            entries = [(b".", ino, DT_DIR), (b"..", ino, DT_DIR)]
            with os.scandir(os.fsencode(proc_path(fd))) as it:
                entries.extend((e.name, e.inode(), _dtype(e)) for e in it)
        return entries

    def opendir(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """OPENDIR: snapshot the listing; offsets index into it."""
        node = self.node(h.nodeid)
        dir_id = next(self._dir_ids)
        self._dirs[dir_id] = (node, self._listing(node))
        return p.OPEN_OUT.pack(dir_id, 0, 0)

    def _readdir(self, h: p.InHeader, body: bytes, plus: bool) -> bytes:
        fh, offset, size, _ = p.READ_IN.unpack_from(body)
        node, entries = self._dirs[fh]
        if offset == 0:  # rewinddir: see the directory as it is now
            entries = self._listing(node)
            self._dirs[fh] = (node, entries)
        out = bytearray()
        with self._pathfd(node) as pfd:
            for index in range(offset, len(entries)):
                name, ino, dtype = entries[index]
                record = p.DIRENT.size + len(name)
                padded = (record + 7) & ~7
                if len(out) + padded + (p.ENTRY_OUT.size if plus else 0) > size:
                    break
                if plus:
                    if name in (b".", b".."):
                        out += bytes(p.ENTRY_OUT.size)
                    else:
                        try:
                            _, entry = self._lookup(pfd, name)
                        except OSError:
                            continue  # removed since the snapshot
                        out += entry
                out += p.DIRENT.pack(ino, index + 1, len(name), dtype) + name + bytes(padded - record)
        return bytes(out)

    def readdir(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """READDIR."""
        return self._readdir(h, body, plus=False)

    def readdirplus(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """READDIRPLUS: entries with attributes; each takes a lookup reference."""
        return self._readdir(h, body, plus=True)

    def releasedir(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """RELEASEDIR."""
        self._dirs.pop(p.RELEASE_IN.unpack_from(body)[0], None)
        return b""

    def fsyncdir(self, dev_fd: int, h: p.InHeader, body: bytes) -> bytes | None:
        """FSYNCDIR."""
        fd = self.open_node(self.node(h.nodeid), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return b""
