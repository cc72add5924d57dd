"""bench.fusefs.dispatch against a small fake file system, its replies read from a pipe: the
reply header and body, -errno replies, requests without a reply, and the undo of a reply the
kernel refused."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest
from fusefs_helpers import request

from bench.fusefs import protocol as p
from bench.fusefs.dispatch import ROUTES, DeviceChannel, Dispatcher
from bench.fusefs.operations import Operations
from bench.fusefs.protocol import Opcode
from bench.fusefs.wire import Attr, Context, Dirents, Entry, Opened

STAT = os.stat(__file__)
UNIQUE = 77


class Fake(Operations):
    """Answers what the tests ask and records every call as (operation, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        self.calls.append(("lookup", parent, name))
        if name == b"missing":
            raise OSError(errno.ENOENT, "no such file")
        if name == b"bug":
            raise KeyError(name)
        return Entry(42, STAT, 1.0, 1.0)

    def forget(self, ctx: Context, nodeid: int, nlookup: int) -> None:
        self.calls.append(("forget", nodeid, nlookup))

    def getattr(self, ctx: Context, nodeid: int, fh: int | None) -> Attr:
        self.calls.append(("getattr", nodeid, fh, ctx.uid))
        return Attr(STAT, 1.0)

    def open(self, ctx: Context, nodeid: int, flags: int) -> Opened:
        return Opened(9, p.FOPEN_KEEP_CACHE)

    def release(self, ctx: Context, nodeid: int, fh: int) -> None:
        self.calls.append(("release", nodeid, fh))

    def create(self, ctx: Context, parent: int, name: bytes, mode: int, flags: int) -> tuple[Entry, Opened]:
        return Entry(43, STAT, 1.0, 1.0), Opened(10)

    def opendir(self, ctx: Context, nodeid: int, flags: int) -> Opened:
        return Opened(3)

    def releasedir(self, ctx: Context, nodeid: int, fh: int) -> None:
        self.calls.append(("releasedir", nodeid, fh))

    def readdirplus(self, ctx: Context, nodeid: int, fh: int, offset: int, size: int) -> Dirents:
        out = Dirents(size, plus=True)
        out.add(b".", 1, 4, 1)
        out.add(b"a", 2, 8, 2, Entry(50, STAT, 1.0, 1.0))
        out.add(b"b", 3, 8, 3, Entry(51, STAT, 1.0, 1.0))
        return out

    def write(self, ctx: Context, nodeid: int, fh: int, offset: int, data: memoryview) -> int:
        self.calls.append(("write", fh, offset, bytes(data)))
        return len(data)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """(read end, write end), non-blocking: a missing reply reads as BlockingIOError."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    os.close(r)
    os.close(w)


def _reply(r: int) -> tuple[int, int, bytes]:
    """(unique, error, body) of the one reply in the pipe."""
    data = os.read(r, 1 << 16)
    length, error, unique = p.OUT_HEADER.unpack_from(data)
    assert length == len(data)
    return unique, error, data[p.OUT_HEADER_SIZE :]


def _no_reply(r: int) -> bool:
    try:
        os.read(r, 1 << 16)
    except BlockingIOError:
        return True
    return False


def test_every_route_calls_an_operation_of_the_base_class() -> None:
    for opcode, route in ROUTES.items():
        assert route.operation is None or callable(getattr(Operations, route.operation)), opcode


def test_entry_reply(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ops = Fake()
    Dispatcher(ops).handle(DeviceChannel(w, {}), request(Opcode.LOOKUP, b"name\0"))
    unique, error, body = _reply(r)
    assert (unique, error) == (UNIQUE, 0)
    assert p.ENTRY_OUT.unpack(body)[0] == 42
    assert ops.calls == [("lookup", 5, b"name")]


def test_operation_gets_the_context_and_decoded_arguments(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ops = Fake()
    Dispatcher(ops).handle(DeviceChannel(w, {}), request(Opcode.GETATTR, p.GETATTR_IN.pack(p.GETATTR_FH, 0, 9), uid=321))
    assert ops.calls == [("getattr", 5, 9, 321)]
    _, error, body = _reply(r)
    assert error == 0 and len(body) == p.ATTR_OUT.size


def test_write_reply(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ops = Fake()
    Dispatcher(ops).handle(DeviceChannel(w, {}), request(Opcode.WRITE, p.WRITE_IN.pack(9, 100, 3, 0) + bytes(16) + b"abc"))
    assert ops.calls == [("write", 9, 100, b"abc")]
    assert p.WRITE_OUT.unpack(_reply(r)[2]) == (3, 0)


def test_oserror_is_the_errno_reply_and_counted(pipe: tuple[int, int]) -> None:
    r, w = pipe
    errors: dict[int, int] = {}
    Dispatcher(Fake()).handle(DeviceChannel(w, errors), request(Opcode.LOOKUP, b"missing\0"))
    assert _reply(r) == (UNIQUE, -errno.ENOENT, b"")
    assert errors == {errno.ENOENT: 1}


@pytest.mark.parametrize("opcode", [Opcode.MKDIR, Opcode.STATX, Opcode.INIT, p.MAX_OPCODE + 10, 4096])
def test_what_is_not_implemented_answers_enosys(pipe: tuple[int, int], opcode: int) -> None:
    r, w = pipe
    errors: dict[int, int] = {}
    Dispatcher(Fake()).handle(DeviceChannel(w, errors), request(opcode, p.MKDIR_IN.pack(0o755, 0) + b"d\0"))
    assert _reply(r) == (UNIQUE, -errno.ENOSYS, b"")
    assert errors == {errno.ENOSYS: 1}


def test_unexpected_exception_is_eio_with_a_warning(pipe: tuple[int, int], capsys: pytest.CaptureFixture[str]) -> None:
    r, w = pipe
    Dispatcher(Fake()).handle(DeviceChannel(w, {}), request(Opcode.LOOKUP, b"bug\0"))
    assert _reply(r) == (UNIQUE, -errno.EIO, b"")
    assert "LOOKUP failed: KeyError(b'bug')" in capsys.readouterr().err


def test_a_message_too_short_for_its_opcode_is_eio(pipe: tuple[int, int]) -> None:
    r, w = pipe
    Dispatcher(Fake()).handle(DeviceChannel(w, {}), request(Opcode.GETATTR, b"\0"))
    assert _reply(r)[1] == -errno.EIO


def test_forgets_and_interrupt_get_no_reply(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ops = Fake()
    dispatch, channel = Dispatcher(ops).handle, DeviceChannel(w, {})
    dispatch(channel, request(Opcode.FORGET, p.FORGET_IN.pack(3)))
    dispatch(channel, request(Opcode.BATCH_FORGET, p.BATCH_FORGET_IN.pack(2, 0) + p.FORGET_ONE.pack(10, 1)
                        + p.FORGET_ONE.pack(11, 2)))
    dispatch(channel, request(Opcode.INTERRUPT, p.FORGET_IN.pack(UNIQUE - 1)))
    assert _no_reply(r)
    assert ops.calls == [("forget", 5, 3), ("forget", 10, 1), ("forget", 11, 2)]


def test_destroy_answers_success(pipe: tuple[int, int]) -> None:
    r, w = pipe
    Dispatcher(Fake()).handle(DeviceChannel(w, {}), request(Opcode.DESTROY))
    assert _reply(r) == (UNIQUE, 0, b"")


UNDONE = [
    pytest.param(Opcode.LOOKUP, b"name\0", [("lookup", 5, b"name"), ("forget", 42, 1)], id="lookup"),
    pytest.param(Opcode.OPEN, p.OPEN_IN.pack(os.O_RDONLY, 0), [("release", 5, 9)], id="open"),
    pytest.param(Opcode.CREATE, p.CREATE_IN.pack(os.O_WRONLY, 0o644, 0, 0) + b"new\0",
                 [("release", 43, 10), ("forget", 43, 1)], id="create"),
    pytest.param(Opcode.OPENDIR, p.OPEN_IN.pack(0, 0), [("releasedir", 5, 3)], id="opendir"),
    pytest.param(Opcode.READDIRPLUS, p.READ_IN.pack(3, 0, 4096, 0) + bytes(16),
                 [("forget", 50, 1), ("forget", 51, 1)], id="readdirplus"),
]


@pytest.mark.parametrize(("opcode", "body", "calls"), UNDONE)
def test_reply_refused_as_interrupted_gives_back_what_it_handed_out(
        pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        opcode: int, body: bytes, calls: list[tuple]) -> None:
    _, w = pipe
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if fd == w:
            raise OSError(errno.ENOENT, "the request was interrupted")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    ops = Fake()
    errors: dict[int, int] = {}
    Dispatcher(ops).handle(DeviceChannel(w, errors), request(opcode, body))
    assert ops.calls == calls
    assert errors == {} and capsys.readouterr().err == ""  # an interrupted request is no error


def test_reply_refused_otherwise_is_undone_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    r, w = os.pipe()
    os.close(r)  # the write fails with EPIPE
    ops = Fake()
    try:
        Dispatcher(ops).handle(DeviceChannel(w, {}), request(Opcode.LOOKUP, b"name\0"))
    finally:
        os.close(w)
    assert ops.calls == [("lookup", 5, b"name"), ("forget", 42, 1)]
    assert "reply rejected by the kernel" in capsys.readouterr().err
