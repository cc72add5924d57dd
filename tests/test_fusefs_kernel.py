"""bench.fusefs.kernel: the possible-CPU count (FUSE ring queues, per-CPU map values) and
whether FUSE over io_uring can work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.fusefs.kernel import possible_cpus, uring_missing, uring_unavailable_reason


@pytest.mark.parametrize("text, count", [("0\n", 1), ("0-1\n", 2), ("0-3,8-11", 8), ("0,2,4-5", 4)])
def test_possible_cpus_counts_ranges_and_singles(text: str, count: int) -> None:
    assert possible_cpus(text) == count


def test_possible_cpus_reads_the_running_kernel() -> None:
    assert possible_cpus() >= len(os.sched_getaffinity(0)) >= 1  # at least the CPUs this process may use


def test_a_kernel_without_the_uring_parameter_is_named_with_the_fix(tmp_path: Path) -> None:
    assert uring_unavailable_reason(tmp_path / "enable_uring") == uring_missing(tmp_path / "enable_uring")
    assert "needs Linux 6.14 or newer built with CONFIG_FUSE_IO_URING=y" in uring_missing()
    (tmp_path / "enable_uring").write_text("N\n")
    assert uring_unavailable_reason(tmp_path / "enable_uring") is None  # N is for root to switch, not a reason
