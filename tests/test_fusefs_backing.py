"""bench.fusefs.backing: one backing id per open inode, the fd policies, and the counters and
ioctl times the stats file reports (the ioctls themselves faked here; real ones in
test_fusefs_lifecycle.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.fusefs import backing
from bench.fusefs.backing import BackingRegistry


@dataclass(eq=False)
class Node:
    opens: int = 0
    backing_id: int = 0
    backing_fd: int = -1


@pytest.fixture
def ioctls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    ids = iter(range(1, 1000))

    def backing_open(dev_fd: int, fd: int) -> int:
        calls.append(("open", fd))
        return next(ids)

    def backing_close(dev_fd: int, backing_id: int) -> None:
        calls.append(("close", backing_id))

    monkeypatch.setattr(backing.device, "backing_open", backing_open)
    monkeypatch.setattr(backing.device, "backing_close", backing_close)
    return calls


def opener(path: Path):
    return lambda: os.open(path, os.O_RDONLY)


@pytest.mark.parametrize(("policy", "kept_fd"), [("keep", True), ("close", False), ("cache", False)])
def test_one_registration_per_inode_and_the_counters(tmp_path: Path, ioctls, policy: str, kept_fd: bool) -> None:
    (tmp_path / "f").write_text("x")
    registry = BackingRegistry(dev_fd=-1, policy=policy, cache_size=4)
    node = Node()
    first = registry.acquire(node, opener(tmp_path / "f"))
    assert registry.acquire(node, opener(tmp_path / "f")) == first  # a second open shares the id
    assert (node.backing_fd >= 0) is kept_fd
    registry.release(node)
    registry.release(node)
    stats = registry.stats()
    assert list(stats) == list(backing.STATS)
    assert stats["backing_opens_total"] == 1 and stats["backing_open_ns_total"] > 0
    if policy == "cache":  # the id outlives the last release, and a reopen registers nothing
        assert stats["backing_closes_total"] == 0 and registry.acquire(node, opener(tmp_path / "f")) == first
        assert registry.stats()["backing_opens_total"] == 1
    else:
        assert stats["backing_closes_total"] == 1 and stats["backing_close_ns_total"] > 0
        assert ioctls == [("open", ioctls[0][1]), ("close", first)] and node.backing_fd == -1
