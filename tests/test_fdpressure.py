"""fd-pressure measurements on real mounts: bindfs checks the machinery itself."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.fdpressure import (
    DAEMON_FDS_TOLERANCE,
    FILE_CONTENT,
    FILE_NR_TOLERANCE,
    FILES_DIR,
    SLAB_TOLERANCE,
    file_name,
    measure_step,
    nofile_soft_limit,
    percentile,
    prepare_files,
)
from bench.system import is_root

CLIENT_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

needs_fuse = pytest.mark.skipif(not (is_root() and os.path.exists("/dev/fuse")), reason="needs root and /dev/fuse")
needs_bindfs = pytest.mark.skipif(shutil.which("bindfs") is None, reason="bindfs is not installed")


def test_prepare_files_creates_once_and_reuses(tmp_path: Path) -> None:
    directory = prepare_files(tmp_path, 3)
    assert sorted(os.listdir(directory)) == [file_name(i) for i in range(3)]
    (directory / file_name(0)).write_bytes(b"kept")
    prepare_files(tmp_path, 5)
    assert (directory / file_name(0)).read_bytes() == b"kept"
    assert (directory / file_name(4)).read_bytes() == FILE_CONTENT


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None


@dataclass
class BindfsMount:
    """A bindfs mount this test started (what measure_step needs of a mounted target)."""

    path: Path
    daemon_pid: int

    def read_stats(self) -> dict | None:
        return None


@pytest.fixture
def bindfs(tmp_path: Path):
    """Mount bindfs over a prepared source with a given daemon RLIMIT_NOFILE; always unmounted."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def mount(files: int, nofile: int) -> BindfsMount:
        source, mountpoint = tmp_path / "source", tmp_path / "mnt"
        mountpoint.mkdir()
        prepare_files(source, files)
        process = subprocess.Popen(
            ["bindfs", "-f", str(source.resolve()), str(mountpoint.resolve())],
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)),
        )
        started.append((process, mountpoint))
        deadline = time.monotonic() + 10
        while not os.path.ismount(mountpoint):
            assert process.poll() is None and time.monotonic() < deadline, "bindfs did not mount"
            time.sleep(0.02)
        return BindfsMount(mountpoint.resolve(), process.pid)

    yield mount
    for process, mountpoint in started:
        if os.path.ismount(mountpoint):
            if subprocess.run(["fusermount3", "-u", str(mountpoint.resolve())]).returncode != 0:
                subprocess.run(["fusermount3", "-uz", str(mountpoint.resolve())], check=True)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.integration
@needs_fuse
@needs_bindfs
def test_bindfs_daemon_holds_one_visible_fd_per_open_file(bindfs) -> None:
    count = 300
    mounted = bindfs(count, nofile=4096)
    row = measure_step(mounted, count, CLIENT_NOFILE)
    assert (row["opened"], row["failed"], row["errno"]) == (count, 0, None)
    assert row["client_fds_delta"] == count
    # bindfs opens the source file for each open through the mount and keeps it open.
    assert abs(row["daemon_fds_delta"] - count) <= DAEMON_FDS_TOLERANCE
    assert abs(row["file_nr_delta"] - 2 * count) <= FILE_NR_TOLERANCE
    assert abs(row["hidden_files"]) <= FILE_NR_TOLERANCE
    assert row["backing_file_objects"] is not None and abs(row["backing_file_objects"]) <= SLAB_TOLERANCE
    assert row["backing_ids"] is None  # bindfs has no stats file
    assert 0 < row["open_p50_us"] <= row["open_p99_us"]
    assert row["opens_per_s"] > 0 and row["close_s"] >= 0
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
@needs_fuse
@needs_bindfs
def test_bindfs_at_its_fd_limit_fails_opens_with_emfile(bindfs) -> None:
    count, nofile = 300, 128
    mounted = bindfs(count, nofile=nofile)
    assert nofile_soft_limit(mounted.daemon_pid) == nofile
    row = measure_step(mounted, count, CLIENT_NOFILE)
    # The daemon needs a few fds of its own (/dev/fuse, stdio); every further open fails.
    assert nofile - 10 <= row["opened"] <= nofile - row["daemon_fds_before"]
    assert row["failed"] == count - row["opened"]
    assert row["errno"] == "EMFILE"
    assert row["daemon_fds_before"] + row["daemon_fds_delta"] <= nofile
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
@needs_fuse
@needs_bindfs
def test_failed_opens_are_counted_with_the_first_errno(bindfs) -> None:
    count = 20
    mounted = bindfs(count, nofile=4096)
    row = measure_step(mounted, count + 5, CLIENT_NOFILE)
    assert (row["opened"], row["failed"], row["errno"]) == (count, 5, "ENOENT")
    assert row["client_fds_delta"] == count
    assert row["returned_to_baseline"] is True, row["baseline_detail"]
