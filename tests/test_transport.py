"""bench.transport: an external daemon's io_uring instances from /proc and the transport judged
from them (unit, on a /proc of files), and the counters of a real ring (integration)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import system
from bench.fusefs.kernel import uring_unavailable_reason
from bench.scenario import FuseTarget
from bench.targets import open_target
from bench.transport import (
    DEV,
    U32,
    UNKNOWN,
    URING,
    fdinfo_field,
    judge,
    ring_completions,
    ring_tails,
)

# /proc/PID/fdinfo/N of an io_uring instance (io_uring_show_fdinfo, Linux 6.18), shortened.
FDINFO = """pos:\t0
flags:\t02000002
mnt_id:\t16
ino:\t2077
SqMask:\t0x1f
SqHead:\t1234
SqTail:\t1234
CachedSqHead:\t1234
CqMask:\t0x3f
CqHead:\t1230
CqTail:\t1236
CachedCqTail:\t1236
SQEs:\t0
CQEs:\t6
SqThread:\t-1
SqThreadCpu:\t-1
SqTotalTime:\t0
SqWorkTime:\t0
UserFiles:\t0
UserBufs:\t0
PollList:
CqOverflowList:
"""


def fake_proc(root: Path, pid: int, ppid: int, fds: dict[int, str | None]) -> None:
    """A /proc entry: `fds` maps an fd to its CqTail text (an io_uring instance) or None (a plain file)."""
    (root / str(pid) / "fd").mkdir(parents=True)
    (root / str(pid) / "fdinfo").mkdir()
    (root / str(pid) / "stat").write_text(f"{pid} (daemon x) S {ppid} {pid} {pid} 0 -1\n")
    for fd, fdinfo in fds.items():
        (root / str(pid) / "fd" / str(fd)).symlink_to("anon_inode:[io_uring]" if fdinfo is not None else "/dev/fuse")
        (root / str(pid) / "fdinfo" / str(fd)).write_text(fdinfo if fdinfo is not None else "pos:\t0\nflags:\t02\n")


def instance(inode: int, tail: int) -> str:
    """The fdinfo of the io_uring instance with inode `inode` and CqTail `tail`."""
    return FDINFO.replace("ino:\t2077", f"ino:\t{inode}").replace("CqTail:\t1236", f"CqTail:\t{tail}")


def test_fields_are_read_from_fdinfo() -> None:
    assert (fdinfo_field(FDINFO, "CqTail"), fdinfo_field(FDINFO, "ino")) == (1236, 2077)
    assert fdinfo_field("pos:\t0\nflags:\t02\n", "CqTail") is None


def test_rings_of_the_daemon_and_its_children_are_found_once_each_and_nothing_else(tmp_path: Path) -> None:
    # fd 8 is a second fd of fd 7's instance (a dup: Python's mmap keeps one), 9 of a child's
    fake_proc(tmp_path, 100, 1, {3: None, 7: FDINFO, 8: FDINFO, 9: instance(3000, 9)})
    fake_proc(tmp_path, 101, 100, {4: instance(3000, 9)})
    fake_proc(tmp_path, 102, 101, {5: instance(3001, 1)})  # a grandchild
    fake_proc(tmp_path, 200, 1, {5: FDINFO})  # another process
    assert ring_tails(100, proc=tmp_path) == {"ino 2077": 1236, "ino 3000": 9, "ino 3001": 1}
    assert ring_tails(200, proc=tmp_path) == {"ino 2077": 1236}


def test_a_daemon_without_rings_has_none_and_a_gone_one_cannot_be_read(tmp_path: Path) -> None:
    fake_proc(tmp_path, 100, 1, {3: None})
    assert ring_tails(100, proc=tmp_path) == {}
    assert ring_tails(999, proc=tmp_path) is None


def test_completions_count_new_rings_from_zero_and_wrap_at_32_bits() -> None:
    assert ring_completions({"ino 3": 10, "ino 4": U32 - 5}, {"ino 3": 25, "ino 4": 3, "ino 9": 7}) == 15 + 8 + 7


def test_a_reused_inode_counts_its_new_ring_from_zero() -> None:
    """Ring closed and another made with its inode number: its counter starts again, it did not wrap."""
    assert ring_completions({"ino 3": 5000}, {"ino 3": 40}) == 40


@pytest.mark.parametrize(("before", "after", "requests", "expected"), [
    ({}, {}, {"READ": 100}, (DEV, 0)),                                   # no io_uring instance at all
    ({}, {}, None, (DEV, 0)),                                            # ... whether counted or not
    ({"ino 3": 0}, {"ino 3": 0}, {"READ": 100, "LOOKUP": 2}, (DEV, 0)),        # requests, and no ring moved
    ({"ino 3": 0}, {"ino 3": 102}, {"READ": 100, "LOOKUP": 2}, (URING, 102)),  # a completion per request
    ({"ino 3": 0}, {"ino 3": 95}, {"READ": 100, "FORGET": 50}, (URING, 95)),  # FORGET never goes through a ring
    ({"ino 3": 0}, {"ino 3": 40}, {"READ": 100}, (UNKNOWN, 40)),               # rings busy with something else
    ({"ino 3": 0}, {"ino 3": 500}, None, (UNKNOWN, 500)),                      # requests not counted
    (None, {"ino 3": 5}, {"READ": 1}, (UNKNOWN, None)),                      # the daemon could not be read
])
def test_the_transport_is_judged_from_the_rings_and_the_requests(before, after, requests, expected) -> None:
    assert judge(before, after, requests) == expected


@pytest.mark.integration
def test_a_real_ring_counts_the_requests_it_served(require_root, source: Path, tmp_path: Path) -> None:
    if system.uring_parameter() is None:
        pytest.fail(uring_unavailable_reason())
    target = FuseTarget(name="ring", type="fuse", transport="uring")
    with system.fuse_uring(), open_target(target, source, tmp_path / "work") as mounted:
        served_before, before = ring_served(mounted), ring_tails(mounted.daemon_pid)
        for _ in range(20):
            (mounted.path / "data").read_bytes()  # OPEN, READ, FLUSH, RELEASE: a request each
        served, after = ring_served(mounted) - served_before, ring_tails(mounted.daemon_pid)
    assert before and set(before) <= set(after)
    # Every request through a ring completes a command; the server's own disk I/O on them may add more.
    assert ring_completions(before, after) >= served >= 20 * 3
    assert judge(before, after, {"READ": served}) == (URING, ring_completions(before, after))


def ring_served(mounted) -> int:
    """Requests the built-in server has answered through its rings so far (its stats once settled)."""
    return sum(mounted.read_stats(newer_than=time.time())["ring"]["requests"].values())
