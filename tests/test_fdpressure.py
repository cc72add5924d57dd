"""fd-pressure measurements on real mounts: bindfs checks the machinery itself."""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
import time
from pathlib import Path

import psutil
import pytest
import yaml

from bench.fdpressure.counts import Counts, FdPressureError
from bench.fdpressure.derive import (
    DAEMON_FDS_TOLERANCE,
    FILE_NR_TOLERANCE,
    SLAB_TOLERANCE,
    baseline_differences,
    step_figures,
)
from bench.fdpressure.steps import FILES_DIR, measure_step, run_fd_pressure
from bench.records import FdPressureRecord, SnapshotRecord
from bench.scenario import Scenario, load_scenario, parse_scenario
from bench.smallfiles import create_files
from bench.targets import open_target
from bench.workspace import owned_dir

CLIENT_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]



def test_step_figures_account_for_every_file() -> None:
    before = Counts(file_nr=1000, daemon_fds=8, daemon_rss_kib=100, client_fds=4, bfilp_active=10,
                    bfilp_objsize=256, backing_ids=0)
    # A passthrough daemon with fd policy close: 50 files held by the client, none by the daemon.
    held = dataclasses.replace(before, file_nr=1100, client_fds=54, bfilp_active=60, backing_ids=50,
                               daemon_rss_kib=120)
    opened = {"opened": 50, "failed": 0, "errno": None, "open_ns": [2000 * i for i in range(1, 51)], "wall_s": 0.5}
    figures = step_figures(50, before, held, opened, close_s=0.01234567, noise=3, daemon_counted=True)
    assert (figures["daemon_fds_delta"], figures["client_fds_delta"], figures["file_nr_delta"]) == (0, 50, 100)
    assert figures["hidden_files"] == 50  # allocated, yet in no process's fd table
    assert (figures["backing_file_objects"], figures["backing_ids"]) == (50, 50)
    assert figures["kernel_bytes_per_file"] == 256.0
    assert (figures["open_p50_us"], figures["open_p99_us"], figures["opens_per_s"]) == (50.0, 100.0, 100.0)
    assert (figures["daemon_rss_delta_kib"], figures["close_s"], figures["file_nr_noise"]) == (20, 0.0123, 3)
    unknown_daemon = step_figures(50, before, held, opened, close_s=0.0, noise=0, daemon_counted=False)
    assert unknown_daemon["hidden_files"] is None
    FdPressureRecord(target="t", status="ok", **figures)  # every figure is a column


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
    """Run fd pressure for a scenario and check the rows it wrote (conftest checks for leftover mounts)."""
    def run(scenario: Scenario) -> list[dict]:
        written: list[tuple[FdPressureRecord, list[SnapshotRecord], dict]] = []
        records = run_fd_pressure(scenario, tmp_path / "source", tmp_path / "work",
                                  lambda *step: written.append(step), progress=lambda _: None)
        assert records == [record for record, _, _ in written]
        for record, snapshots, client in written:
            assert record.status == "ok", record.error
            assert [s.phase for s in snapshots] == ["baseline", "before", "held", "after"]
            assert snapshots[2].file_nr - snapshots[1].file_nr == record.file_nr_delta
            assert len(client["open_ns"]) == record.opened and client["close_s"] >= 0
        return [record.row() for record in records]

    (tmp_path / "source").mkdir()
    return run


def file_nr_slack(row: dict) -> int:
    """How far a file-nr based figure may be off: the kernel's per-CPU error plus the host's noise."""
    return FILE_NR_TOLERANCE + row["file_nr_noise"]


BINDFS = '{name: bindfs, type: external, command: [bindfs, -f, "{source}", "{mountpoint}"]}'


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_bindfs_daemon_holds_one_visible_fd_per_open_file(run_steps) -> None:
    count = 300
    (row,) = run_steps(fd_scenario([BINDFS], [count], daemon_nofile=4096))
    assert (row["opened"], row["failed"], row["errno"]) == (count, 0, None)
    assert row["daemon_nofile"] == 4096 and row["daemon_fds_before"] > 0
    assert row["client_fds_delta"] == count
    # bindfs opens the source file for each open through the mount and keeps it open.
    assert abs(row["daemon_fds_delta"] - count) <= DAEMON_FDS_TOLERANCE
    assert abs(row["file_nr_delta"] - 2 * count) <= file_nr_slack(row)
    assert abs(row["hidden_files"]) <= file_nr_slack(row)
    assert abs(row["backing_file_objects"]) <= SLAB_TOLERANCE
    assert row["backing_ids"] is None  # bindfs has no stats file
    assert 0 < row["open_p50_us"] <= row["open_p99_us"]
    assert row["opens_per_s"] > 0 and row["close_s"] >= 0
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
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
@pytest.mark.usefixtures("require_root")
def test_failed_opens_are_counted_with_the_first_errno(tmp_path: Path) -> None:
    count = 20
    create_files(owned_dir(tmp_path, FILES_DIR), count)
    target = fd_scenario([BINDFS], [count], daemon_nofile=4096).target("bindfs")
    with open_target(target, tmp_path, tmp_path / "work") as mounted:
        # Five names past the prepared files: the client opens names, it never lists the mount.
        row, _, _ = measure_step(mounted, count + 5, CLIENT_NOFILE)
    assert (row["opened"], row["failed"], row["errno"]) == (count, 5, "ENOENT")
    assert row["client_fds_delta"] == count
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


# ---------------------------------------------------------------- the built-in server

PLAIN = "{name: fuse, type: fuse}"
KEEP = "{name: passthrough-keep, type: passthrough, fd_policy: keep}"
CLOSE = "{name: passthrough-close, type: passthrough, fd_policy: close}"


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_keep_policy_holds_one_daemon_fd_per_open_file(run_steps) -> None:
    rows = run_steps(fd_scenario([KEEP], [100, 300], daemon_nofile=4096))
    for row in rows:
        count = row["open_files"]
        assert (row["opened"], row["failed"]) == (count, 0)
        assert abs(row["daemon_fds_delta"] - count) <= DAEMON_FDS_TOLERANCE
        assert row["backing_ids"] == count
        assert abs(row["backing_file_objects"] - count) <= SLAB_TOLERANCE
        assert abs(row["hidden_files"]) <= file_nr_slack(row)  # the daemon's fds are the backing files
        assert row["returned_to_baseline"] is True, row["baseline_detail"]
    assert rows[1]["daemon_fds_delta"] - rows[0]["daemon_fds_delta"] >= 200 - 2 * DAEMON_FDS_TOLERANCE


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_close_policy_keeps_daemon_fds_flat_while_hidden_files_grow(run_steps) -> None:
    rows = run_steps(fd_scenario([CLOSE], [100, 300], daemon_nofile=4096))
    for row in rows:
        count = row["open_files"]
        assert (row["opened"], row["failed"]) == (count, 0)
        assert abs(row["daemon_fds_delta"]) <= DAEMON_FDS_TOLERANCE
        assert row["backing_ids"] == count
        assert abs(row["hidden_files"] - count) <= file_nr_slack(row)
        assert abs(row["backing_file_objects"] - count) <= SLAB_TOLERANCE
        assert row["kernel_bytes_per_file"] > 0
        assert row["returned_to_baseline"] is True, row["baseline_detail"]
    assert rows[1]["hidden_files"] > rows[0]["hidden_files"]


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_close_policy_outlives_a_daemon_limit_that_plain_and_keep_hit(run_steps) -> None:
    count, nofile = 400, 256
    rows = {row["target"]: row for row in run_steps(fd_scenario([PLAIN, KEEP, CLOSE], [count], daemon_nofile=nofile))}
    for name in ("fuse", "passthrough-keep"):
        row = rows[name]
        assert row["daemon_nofile"] == nofile
        # Each open file costs the daemon one fd: opens fail once its table is full.
        room = nofile - row["daemon_fds_before"]
        assert room - DAEMON_FDS_TOLERANCE <= row["opened"] <= room
        assert row["failed"] == count - row["opened"]
        assert row["errno"] == "EMFILE"
        assert row["daemon_fds_before"] + row["daemon_fds_delta"] <= nofile
        assert row["returned_to_baseline"] is True, row["baseline_detail"]
    close = rows["passthrough-close"]
    assert (close["opened"], close["failed"], close["errno"]) == (count, 0, None)
    assert close["returned_to_baseline"] is True, close["baseline_detail"]


def test_shipped_scenario_has_the_fd_pressure_experiment() -> None:
    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "fd-pressure.yaml")
    policies = {scenario.target(name).type + "/" + str(getattr(scenario.target(name), "fd_policy", None))
                for name in scenario.fd_pressure.targets}
    assert {"fuse/None", "passthrough/keep", "passthrough/close"} <= policies
    assert max(scenario.fd_pressure.open_files) > 4 * scenario.fd_pressure.daemon_nofile
    many = [cell for cell in scenario.cells() if cell.nrfiles > 1]
    assert len({cell.nrfiles for cell in many}) >= 2 and all(cell.openfiles is None for cell in many)


def test_baseline_differences_count_only_an_excess_of_system_wide_counts() -> None:
    baseline = Counts(file_nr=1000, daemon_fds=7, daemon_rss_kib=1, client_fds=None,
                      bfilp_active=10, bfilp_objsize=256, backing_ids=0)
    others_closed = dataclasses.replace(baseline, file_nr=1000 - 5 * FILE_NR_TOLERANCE, bfilp_active=0)
    assert baseline_differences(baseline, others_closed) == []
    leaked = dataclasses.replace(baseline, file_nr=1000 + FILE_NR_TOLERANCE + 1, daemon_fds=4, backing_ids=1)
    assert baseline_differences(baseline, leaked) == [
        "daemon fds 7 -> 4", f"file-nr 1000 -> {1000 + FILE_NR_TOLERANCE + 1}", "backing ids 0 -> 1",
    ]
    assert baseline_differences(baseline, leaked, file_nr_noise=1) == ["daemon fds 7 -> 4", "backing ids 0 -> 1"]


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_a_hung_daemon_fails_the_step_and_leaves_no_client_behind(tmp_path: Path) -> None:
    count = 10
    create_files(owned_dir(tmp_path, FILES_DIR), count)
    target = fd_scenario([BINDFS], [count], daemon_nofile=4096).target("bindfs")
    with open_target(target, tmp_path, tmp_path / "work") as mounted:
        os.kill(mounted.daemon_pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(FdPressureError, match="did not finish opening 10 files"):
                measure_step(mounted, count, CLIENT_NOFILE, timeout_s=1)
            assert time.monotonic() - started < 10
        finally:
            os.kill(mounted.daemon_pid, signal.SIGCONT)
    clients = [p for p in psutil.Process().children(recursive=True) if "bench.fdpressure" in " ".join(p.cmdline())]
    assert clients == []
