"""bench.fusefs.operations: the base file system answers ENOSYS to everything but FORGET,
BATCH_FORGET and DESTROY."""

from __future__ import annotations

import errno
import inspect

import pytest

from bench.fusefs.dispatch import ROUTES
from bench.fusefs.operations import Connection, Operations
from bench.fusefs.wire import Context

CTX = Context(unique=1, nodeid=1, uid=0, gid=0, pid=1)
ANSWERED = {"forget", "batch_forget", "destroy"}
NOT_IMPLEMENTED = sorted({r.operation for r in ROUTES.values() if r.operation} - ANSWERED)


@pytest.mark.parametrize("name", NOT_IMPLEMENTED)
def test_operations_not_defined_raise_enosys(name: str) -> None:
    method = getattr(Operations(), name)
    args = [None] * (len(inspect.signature(method).parameters) - 1)
    with pytest.raises(OSError) as exc:
        method(CTX, *args)
    assert exc.value.errno == errno.ENOSYS


def test_forgets_destroy_init_and_stats_do_nothing() -> None:
    ops = Operations()
    assert ops.forget(CTX, 2, 1) is None
    assert ops.batch_forget(CTX, [(2, 1), (3, 1)]) is None
    assert ops.destroy(CTX) is None
    assert ops.init(Connection(fd=-1, flags=0)) is None
    assert ops.stats() == {}
    assert ops.fh_is_fd is False


def test_batch_forget_is_forget_for_each_node() -> None:
    class Counting(Operations):
        def __init__(self) -> None:
            self.forgotten: list[tuple[int, int]] = []

        def forget(self, ctx: Context, nodeid: int, nlookup: int) -> None:
            self.forgotten.append((nodeid, nlookup))

    ops = Counting()
    ops.batch_forget(CTX, [(2, 1), (3, 5)])
    assert ops.forgotten == [(2, 1), (3, 5)]
