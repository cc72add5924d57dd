"""fd-pressure measurements on real mounts: bindfs checks the machinery itself."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import yaml

from bench import cleanup
from bench.columns import FD_PRESSURE_COLUMNS
from bench.fdpressure import (
    DAEMON_FDS_TOLERANCE,
    FILE_CONTENT,
    FILE_NR_TOLERANCE,
    SLAB_TOLERANCE,
    file_name,
    measure_step,
    percentile,
    prepare_files,
    run_fd_pressure,
)
from bench.scenario import Scenario, parse_scenario
from bench.targets import open_target

CLIENT_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]



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


def fd_scenario(targets: list[str], open_files: list[int], daemon_nofile: int) -> Scenario:
    """A scenario with only fd_pressure, over the targets given as YAML flow mappings."""
    names = [yaml.safe_load(target)["name"] for target in targets]
    text = "\n".join([
        "name: fdp-test",
        "targets:",
        *(f"  - {target}" for target in targets),
        f"fd_pressure: {{targets: {names}, open_files: {open_files}, daemon_nofile: {daemon_nofile}}}",
    ])
    return parse_scenario(text)


@pytest.fixture
def run_steps(tmp_path: Path):
    """Run fd pressure for a scenario; check the written rows; leave no mount behind."""
    def run(scenario: Scenario) -> list[dict]:
        written: list[dict] = []
        rows = run_fd_pressure(scenario, tmp_path / "source", tmp_path / "work", written.append, progress=lambda _: None)
        assert rows == written
        for row in rows:
            assert tuple(row) == FD_PRESSURE_COLUMNS
            assert row["status"] == "ok", row["error"]
        return rows

    (tmp_path / "source").mkdir()
    yield run
    assert not [m for m in cleanup.mounts() if m.is_fuse and m.mountpoint.startswith(str(tmp_path))]


BINDFS = '{name: bindfs, type: external, command: [bindfs, -f, "{source}", "{mountpoint}"]}'


@pytest.mark.integration
def test_bindfs_daemon_holds_one_visible_fd_per_open_file(run_steps) -> None:
    count = 300
    (row,) = run_steps(fd_scenario([BINDFS], [count], daemon_nofile=4096))
    assert (row["opened"], row["failed"], row["errno"]) == (count, 0, None)
    assert row["daemon_nofile"] == 4096 and row["daemon_fds_before"] > 0
    assert row["client_fds_delta"] == count
    # bindfs opens the source file for each open through the mount and keeps it open.
    assert abs(row["daemon_fds_delta"] - count) <= DAEMON_FDS_TOLERANCE
    assert abs(row["file_nr_delta"] - 2 * count) <= FILE_NR_TOLERANCE
    assert abs(row["hidden_files"]) <= FILE_NR_TOLERANCE
    assert abs(row["backing_file_objects"]) <= SLAB_TOLERANCE
    assert row["backing_ids"] is None  # bindfs has no stats file
    assert 0 < row["open_p50_us"] <= row["open_p99_us"]
    assert row["opens_per_s"] > 0 and row["close_s"] >= 0
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
def test_bindfs_at_its_fd_limit_fails_opens_with_emfile(run_steps) -> None:
    count, nofile = 300, 128
    (row,) = run_steps(fd_scenario([BINDFS], [count], daemon_nofile=nofile))
    assert row["daemon_nofile"] == nofile
    # Every fd the daemon does not need for itself (/dev/fuse, stdio) serves one open file.
    assert row["opened"] == nofile - row["daemon_fds_before"]
    assert row["failed"] == count - row["opened"]
    assert row["errno"] == "EMFILE"
    assert row["daemon_fds_before"] + row["daemon_fds_delta"] == nofile
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
def test_failed_opens_are_counted_with_the_first_errno(tmp_path: Path) -> None:
    count = 20
    prepare_files(tmp_path, count)
    target = fd_scenario([BINDFS], [count], daemon_nofile=4096).target("bindfs")
    with open_target(target, tmp_path, tmp_path / "work") as mounted:
        # Five names past the prepared files: the client opens names, it never lists the mount.
        row = measure_step(mounted, count + 5, CLIENT_NOFILE)
    assert (row["opened"], row["failed"], row["errno"]) == (count, 5, "ENOENT")
    assert row["client_fds_delta"] == count
    assert row["returned_to_baseline"] is True, row["baseline_detail"]
