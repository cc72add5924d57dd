"""One dispatch for every serve loop: decode a request, call the operation, write its reply
(or its -errno), and give back what an undelivered reply handed out."""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import Any, Callable, NamedTuple, Protocol

from bench.fusefs import protocol as p
from bench.fusefs import wire
from bench.fusefs.operations import Operations
from bench.fusefs.protocol import Opcode
from bench.fusefs.wire import Context, Dirents, Entry, Opened

Undo = Callable[[Operations, Context, tuple, Any], None]

# Test only (tests/test_watchdog.py): seconds every dispatched request waits before it is
# served, to play a slow but live server. Not an option: never set it for a measurement.
TEST_DELAY_ENV = "FUSEFS_TEST_DELAY_S"


def warn(message: str) -> None:
    """One line on stderr (never on the hot path)."""
    print(f"fusefs: {message}", file=sys.stderr, flush=True)


def send(fd: int, unique: int, body: bytes) -> bool:
    """Send a successful reply; False when the kernel no longer wants it."""
    try:
        os.write(fd, p.OUT_HEADER.pack(p.OUT_HEADER_SIZE + len(body), 0, unique) + body)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENODEV):  # interrupted, unmounted
            warn(f"reply rejected by the kernel: {exc}")
        return False


def send_error(fd: int, unique: int, err: int, errors: dict[int, int]) -> None:
    """Send an error reply (-errno) and count it."""
    errors[err] = errors.get(err, 0) + 1
    try:
        os.write(fd, p.OUT_HEADER.pack(p.OUT_HEADER_SIZE, -err, unique))
    except OSError:
        pass  # interrupted or unmounted: nobody waits for it


class Channel(Protocol):
    """Where the replies to requests go: a /dev/fuse fd, or an io_uring entry (bench.fusefs.ring)."""

    def send(self, unique: int, body: bytes) -> bool:
        """Send a successful reply; False when the kernel no longer wants it."""

    def fail(self, unique: int, err: int) -> None:
        """Send an error reply (-errno) and count it."""


class DeviceChannel:
    """Replies written to one /dev/fuse fd (the kernel matches replies per fd)."""

    __slots__ = ("fd", "errors")

    def __init__(self, fd: int, errors: dict[int, int]) -> None:
        self.fd, self.errors = fd, errors

    def send(self, unique: int, body: bytes) -> bool:
        """Send a successful reply; False when the kernel no longer wants it."""
        return send(self.fd, unique, body)

    def fail(self, unique: int, err: int) -> None:
        """Send an error reply (-errno) and count it."""
        send_error(self.fd, unique, err, self.errors)


# What to give back when the kernel refused a reply (the request was interrupted meanwhile).

def _forget_entry(ops: Operations, ctx: Context, args: tuple, entry: Entry) -> None:
    ops.forget(ctx, entry.nodeid, 1)


def _release(ops: Operations, ctx: Context, args: tuple, opened: Opened) -> None:
    ops.release(ctx, args[0], opened.fh)


def _releasedir(ops: Operations, ctx: Context, args: tuple, opened: Opened) -> None:
    ops.releasedir(ctx, args[0], opened.fh)


def _release_created(ops: Operations, ctx: Context, args: tuple, created: tuple[Entry, Opened]) -> None:
    entry, opened = created
    ops.release(ctx, entry.nodeid, opened.fh)
    ops.forget(ctx, entry.nodeid, 1)


def _forget_entries(ops: Operations, ctx: Context, args: tuple, dirents: Dirents) -> None:
    for nodeid in dirents.nodeids:
        ops.forget(ctx, nodeid, 1)


class Route(NamedTuple):
    """How one opcode is served: its decoder, the operation it calls (None: nothing to call),
    its reply encoder (None: no reply) and the undo of an undelivered reply."""

    decode: Callable[[Context, bytes], tuple]
    operation: str | None
    encode: Callable[[Any], bytes] | None
    undo: Undo | None = None


ROUTES: dict[Opcode, Route] = {
    Opcode.LOOKUP: Route(wire.named, "lookup", wire.entry_out, _forget_entry),
    Opcode.FORGET: Route(wire.forget_in, "forget", None),
    Opcode.BATCH_FORGET: Route(wire.batch_forget_in, "batch_forget", None),
    Opcode.GETATTR: Route(wire.getattr_in, "getattr", wire.attr_out),
    Opcode.SETATTR: Route(wire.setattr_in, "setattr", wire.attr_out),
    Opcode.READLINK: Route(wire.node, "readlink", wire.raw),
    Opcode.STATFS: Route(wire.node, "statfs", wire.statfs_out),
    Opcode.ACCESS: Route(wire.access_in, "access", wire.empty),
    Opcode.MKNOD: Route(wire.mknod_in, "mknod", wire.entry_out, _forget_entry),
    Opcode.MKDIR: Route(wire.mkdir_in, "mkdir", wire.entry_out, _forget_entry),
    Opcode.SYMLINK: Route(wire.symlink_in, "symlink", wire.entry_out, _forget_entry),
    Opcode.LINK: Route(wire.link_in, "link", wire.entry_out, _forget_entry),
    Opcode.UNLINK: Route(wire.named, "unlink", wire.empty),
    Opcode.RMDIR: Route(wire.named, "rmdir", wire.empty),
    Opcode.RENAME: Route(wire.rename_in, "rename", wire.empty),
    Opcode.RENAME2: Route(wire.rename2_in, "rename", wire.empty),
    Opcode.GETXATTR: Route(wire.getxattr_in, "getxattr", wire.raw),
    Opcode.LISTXATTR: Route(wire.listxattr_in, "listxattr", wire.raw),
    Opcode.SETXATTR: Route(wire.setxattr_in, "setxattr", wire.empty),
    Opcode.REMOVEXATTR: Route(wire.named, "removexattr", wire.empty),
    Opcode.OPEN: Route(wire.open_in, "open", wire.open_out, _release),
    Opcode.CREATE: Route(wire.create_in, "create", wire.create_out, _release_created),
    Opcode.READ: Route(wire.read_in, "read", wire.raw),
    Opcode.WRITE: Route(wire.write_in, "write", wire.write_out),
    Opcode.FLUSH: Route(wire.fh_in, "flush", wire.empty),
    Opcode.RELEASE: Route(wire.fh_in, "release", wire.empty),
    Opcode.FSYNC: Route(wire.fsync_in, "fsync", wire.empty),
    Opcode.FALLOCATE: Route(wire.fallocate_in, "fallocate", wire.empty),
    Opcode.LSEEK: Route(wire.lseek_in, "lseek", wire.lseek_out),
    Opcode.OPENDIR: Route(wire.open_in, "opendir", wire.open_out, _releasedir),
    Opcode.READDIR: Route(wire.read_in, "readdir", wire.dirents_out),
    Opcode.READDIRPLUS: Route(wire.read_in, "readdirplus", wire.dirents_out, _forget_entries),
    Opcode.RELEASEDIR: Route(wire.fh_in, "releasedir", wire.empty),
    Opcode.FSYNCDIR: Route(wire.fsync_in, "fsyncdir", wire.empty),
    Opcode.DESTROY: Route(wire.no_args, "destroy", wire.empty),
    # The interrupted request gets its own reply, as if not interrupted.
    Opcode.INTERRUPT: Route(wire.no_args, None, None),
}


def _nothing(ctx: Context) -> None:
    """The operation of a request with nothing to do (INTERRUPT)."""


def _delayed(handle: Callable[[Channel, bytes], None], delay: float) -> Callable[[Channel, bytes], None]:
    """`handle`, each request served `delay` seconds late (TEST_DELAY_ENV)."""
    def late(channel: Channel, msg: bytes) -> None:
        time.sleep(delay)
        handle(channel, msg)

    return late


class Dispatcher:
    """Serves every request but the serve loops' fast-path READ and WRITE. Opcodes without a
    route answer ENOSYS."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops
        delay = float(os.environ.get(TEST_DELAY_ENV) or 0)
        if delay:  # a wrapper, not a test on every request's path
            self.handle = _delayed(self.handle, delay)
        self._routes: list[tuple | None] = [None] * p.MAX_OPCODE
        for opcode, route in ROUTES.items():
            call = getattr(ops, route.operation) if route.operation else _nothing
            self._routes[opcode] = (route.decode, call, route.encode, route.undo)

    def handle(self, channel: Channel, msg: bytes) -> None:
        """Serve the request `msg` (as /dev/fuse delivers it), replying on `channel`."""
        opcode, ctx = wire.header(msg)
        route = self._routes[opcode] if opcode < p.MAX_OPCODE else None
        try:
            if route is None:
                raise OSError(errno.ENOSYS, "no such operation")
            decode, call, encode, undo = route
            args = decode(ctx, msg)
            result = call(ctx, *args)
            if encode is not None and not channel.send(ctx.unique, encode(result)) and undo is not None:
                undo(self._ops, ctx, args, result)
        except OSError as exc:
            if exc.errno == errno.ESTALE:  # the kernel and the daemon disagree about a node
                warn(f"{p.OPCODE_NAMES.get(opcode, opcode)} on node {ctx.nodeid}: {exc}")
            channel.fail(ctx.unique, exc.errno or errno.EIO)
        except Exception as exc:  # a bug: answer EIO instead of leaving the caller hanging
            warn(f"{p.OPCODE_NAMES.get(opcode, opcode)} failed: {exc!r}")
            channel.fail(ctx.unique, errno.EIO)
