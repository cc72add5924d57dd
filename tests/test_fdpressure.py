"""fd-pressure measurements on real mounts: bindfs checks the machinery itself."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from bench.fdpressure.counts import (
    Counts,
    FdPressureError,
    Slabs,
    file_nr_noise,
    meminfo_kib,
    take_counts,
)
from bench.fdpressure.derive import (
    DAEMON_FDS_TOLERANCE,
    FILE_NR_TOLERANCE,
    SLAB_TOLERANCE,
    baseline_differences,
    step_figures,
)
from bench.fdpressure.steps import (
    FILES_DIR,
    client_count,
    measure_step,
    merged_report,
    run_fd_pressure,
    shares,
)
from bench.records import FdPressureRecord, SnapshotRecord
from bench.scenario import Scenario, load_scenario, parse_scenario
from bench.smallfiles import create_files
from bench.system import drop_caches
from bench.targets import open_target
from bench.workspace import owned_dir

CLIENT_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]



def test_step_figures_account_for_every_file() -> None:
    baseline = Counts(file_nr=990, daemon_fds=8, daemon_rss_kib=100, client_fds=None, bfilp_active=10,
                      bfilp_objsize=256, backing_ids=0, backing_closes=0, filp_active=500, dentry_active=2000,
                      fuse_inode_active=1, backing_inode_active=300, slab_bytes=1_000_000, meminfo_slab_kib=30_000,
                      meminfo_sunreclaim_kib=20_000)
    before = dataclasses.replace(baseline, file_nr=1000, client_fds=4)
    # A passthrough daemon with fd policy cache: 50 files held by the clients, none by the daemon.
    held = dataclasses.replace(before, file_nr=1100, client_fds=54, bfilp_active=60, backing_ids=50,
                               daemon_rss_kib=120, filp_active=600, dentry_active=2100, fuse_inode_active=51,
                               backing_inode_active=350, slab_bytes=1_100_000, meminfo_slab_kib=30_128,
                               meminfo_sunreclaim_kib=20_016)
    # Closed, clients gone: 20 ids stay in the cache (30 evicted), with the daemon's files behind them.
    idle = dataclasses.replace(baseline, file_nr=1010, backing_ids=20, backing_closes=30, slab_bytes=1_040_000,
                               bfilp_active=10)
    opened = {"opened": 50, "failed": 0, "errno": None, "wall_s": 0.5,
              "clients": [{"open_ns": [2000 * i for i in range(1, 26)]}, {"open_ns": [2000 * i for i in range(26, 51)]}]}
    readings = {"baseline": baseline, "before": before, "held": held, "idle": idle}
    figures = step_figures(50, readings, opened, close_s=0.01234567, noise=3, daemon_counted=True)
    assert (figures["daemon_fds_delta"], figures["client_fds_delta"], figures["file_nr_delta"]) == (0, 50, 100)
    assert figures["visible_fds"] == 50  # what lsof lists
    assert figures["hidden_files"] == 50  # allocated, yet in no process's fd table
    assert (figures["backing_file_objects"], figures["backing_ids"]) == (50, 50)
    assert (figures["file_objects"], figures["dentry_objects"], figures["fuse_inode_objects"],
            figures["backing_inode_objects"]) == (100, 100, 50, 50)
    assert (figures["slab_bytes"], figures["slab_bytes_per_file"], figures["kernel_bytes_per_file"]) == (100_000, 2000.0,
                                                                                                   256.0)
    assert (figures["meminfo_slab_kib"], figures["meminfo_sunreclaim_kib"], figures["file_nr_held"]) == (128, 16, 1100)
    assert (figures["open_p50_us"], figures["open_p99_us"], figures["opens_per_s"]) == (50.0, 100.0, 100.0)
    assert (figures["daemon_rss_delta_kib"], figures["close_s"], figures["file_nr_noise"]) == (20, 0.0123, 3)
    assert (figures["idle_ids"], figures["idle_hidden_files"], figures["closed_ids"]) == (20, 20, 30)
    assert (figures["idle_backing_file_objects"], figures["idle_slab_bytes"]) == (0, 40_000)
    unknown_daemon = step_figures(50, readings, opened, close_s=0.0, noise=0, daemon_counted=False)
    assert unknown_daemon["hidden_files"] is None and unknown_daemon["idle_hidden_files"] is None
    FdPressureRecord(target="t", status="ok", **figures)  # every figure is a column


def test_files_are_spread_over_as_many_clients_as_their_limit_needs() -> None:
    assert client_count(1200, 512, "auto") == 3  # 496 files per client
    assert client_count(496, 512, "auto") == 1
    assert client_count(200_000, 20_000, "auto") == 11
    assert client_count(10, 512, 4) == 4 and client_count(3, 512, 8) == 3  # never a client without files
    assert shares(1200, 3) == [(0, 400), (400, 400), (800, 400)]
    assert shares(10, 3) == [(0, 4), (4, 3), (7, 3)]


def test_the_clients_reports_merge_into_one() -> None:
    reports = [{"opened": 3, "failed": 0, "errno": None, "open_ns": [1, 2, 3], "wall_s": 0.5},
               {"opened": 1, "failed": 2, "errno": "EMFILE", "open_ns": [4], "wall_s": 0.7}]
    merged = merged_report(reports, [{"close_s": 0.1}, {"close_s": 0.05}])
    assert merged == {"opened": 4, "failed": 2, "errno": "EMFILE", "wall_s": 0.7, "close_s": 0.1,
                      "clients": [dict(reports[0], close_s=0.1), dict(reports[1], close_s=0.05)]}


def test_meminfo_fields_are_read_in_kib() -> None:
    text = ("MemTotal:       24000000 kB\nSlab:              31964 kB\nSUnreclaim:        22908 kB\n"
            "HugePages_Total:       0\n")
    assert meminfo_kib(text) == {"MemTotal": 24000000, "Slab": 31964, "SUnreclaim": 22908}


def fd_scenario(definitions: list[str], open_files: list[int], daemon_nofile: int, **keys) -> Scenario:
    """A scenario with only fd_pressure, over the targets defined as YAML flow mappings (more
    fd_pressure keys as `keys`)."""
    names = [yaml.safe_load(target)["name"] for target in definitions]
    plan = {"targets": names, "open_files": open_files, "daemon_nofile": daemon_nofile, **keys}
    text = "\n".join([
        "name: fdp-test",
        "targets:",
        *(f"  - {target}" for target in definitions),
        f"fd_pressure: {json.dumps(plan)}",
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
            phases = [s.phase for s in snapshots]
            assert phases == ["premount", "baseline", "before", "held", "idle", "released", "after"]
            assert snapshots[3].file_nr - snapshots[2].file_nr == record.file_nr_delta
            assert sum(len(mine["open_ns"]) for mine in client["clients"]) == record.opened
            assert len(client["clients"]) == record.clients and client["close_s"] >= 0
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
    assert row["clients"] == 1 and row["visible_fds"] == row["client_fds_delta"] + row["daemon_fds_delta"]
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
                for name in scenario.fd_pressure.target_names()}
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


# ---------------------------------------------------------------- many clients, idle ids, release

CACHE = "{name: passthrough-cache, type: passthrough, fd_policy: cache, cache_size: %d}"


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_three_clients_under_rlimit_512_account_exactly_for_1200_files(run_steps) -> None:
    (row,) = run_steps(fd_scenario([CLOSE], [1200], daemon_nofile=256, client_nofile=512))
    assert row["clients"] == 3 and (row["opened"], row["failed"]) == (1200, 0)
    # fd tables: each client holds its 400 files; the daemon holds none of them.
    assert row["client_fds_delta"] == 1200
    assert abs(row["daemon_fds_delta"]) <= DAEMON_FDS_TOLERANCE
    assert row["visible_fds"] == row["client_fds_delta"] + row["daemon_fds_delta"]
    # Behind each open file: one registered backing id and one kernel backing file, in no table.
    assert row["backing_ids"] == 1200
    assert abs(row["backing_file_objects"] - 1200) <= SLAB_TOLERANCE
    assert abs(row["hidden_files"] - 1200) <= file_nr_slack(row)
    assert abs(row["fuse_inode_objects"] - 1200) <= SLAB_TOLERANCE
    assert row["slab_bytes_per_file"] > 1000  # FUSE and backing files, dentries, inodes
    assert abs(row["kernel_bytes_per_file"] - 256) < 8  # of which one struct backing_file
    assert row["kernel_listed"] in (None, 1200)  # 6.18 lists none; a kernel that lists them, every one
    assert row["file_nr_held"] <= row["file_max"] and row["nr_open"] > 0
    # close policy: nothing stays once the clients are gone.
    assert (row["idle_ids"], row["closed_ids"]) == (0, 1200)
    assert abs(row["idle_hidden_files"]) <= file_nr_slack(row)
    assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_idle_cached_ids_stay_with_no_fd_anywhere_until_released(run_steps) -> None:
    rows = run_steps(fd_scenario([CACHE % 500, (CACHE % 2000).replace("passthrough-cache", "big-cache")], [1200],
                                 daemon_nofile=256, client_nofile=512, release=["drop_caches", "memory_pressure", "unmount"]))
    rows = {(row["target"], row["release"]): row for row in rows}
    assert len(rows) == 6
    for (target, release), row in rows.items():
        kept = 500 if target == "passthrough-cache" else 1200
        assert (row["opened"], row["clients"]) == (1200, 3)
        # Closed and the clients gone: the cache keeps `kept` ids, the rest were evicted.
        assert (row["idle_ids"], row["closed_ids"]) == (kept, 1200 - kept), (target, release)
        # Each idle id is the daemon's registered file: allocated, in no fd table.
        assert abs(row["idle_hidden_files"] - kept) <= file_nr_slack(row), (target, release)
        assert abs(row["idle_backing_file_objects"]) <= SLAB_TOLERANCE  # those go with each open
        assert row["release_s"] is not None and row["release_s"] < 30
        assert row["returned_to_baseline"] is True, row["baseline_detail"]


@pytest.mark.integration
@pytest.mark.usefixtures("require_root")
def test_a_client_killed_midway_fails_the_step_and_leaves_nothing(tmp_path: Path) -> None:
    # 3 clients of 4,000 files: one is killed once it holds 300 but not yet all of them.
    scenario = fd_scenario([CLOSE], [12000], daemon_nofile=256, client_nofile=4100)
    written = []
    drop_caches(level=2)
    before = take_counts(None, slabs=Slabs(None))

    def kill_a_client() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for process in psutil.Process().children(recursive=True):
                try:
                    if "bench.fdpressure.client" in " ".join(process.cmdline()) and 300 < process.num_fds() < 3000:
                        process.kill()
                        return
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_client)
    killer.start()
    (record,) = run_fd_pressure(scenario, tmp_path / "source", tmp_path / "work",
                                lambda *step: written.append(step), progress=lambda _: None)
    killer.join()
    assert record.status == "failed" and "exited while opening 12000 files" in record.error
    assert [p for p in psutil.Process().children(recursive=True) if "bench.fdpressure" in " ".join(p.cmdline())] == []
    drop_caches(level=2)
    after = take_counts(None, slabs=Slabs(None))
    assert baseline_differences(before, after, file_nr_noise=file_nr_noise()) == []


def test_shipped_scale_scenario_reaches_200k_held_files_and_a_million_idle_ids() -> None:
    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "fd-scale.yaml")
    steps = scenario.fd_pressure.steps()
    close = [count for name, count, _ in steps if getattr(scenario.target(name), "fd_policy", None) == "close"]
    assert max(close) >= 200_000
    cached = [(count, scenario.target(name).cache_size) for name, count, _ in steps
              if getattr(scenario.target(name), "fd_policy", None) == "cache"]
    assert max(min(count, size) for count, size in cached) >= 1_000_000  # idle ids that stay cached
    assert any(count > size for count, size in cached)  # and a cache that evicts
    assert {release for _, _, release in steps} == {"drop_caches", "memory_pressure", "unmount"}


def test_a_target_entry_can_bring_its_own_steps() -> None:
    scenario = fd_scenario([CLOSE, CACHE % 10], [10, 20], daemon_nofile=64,
                           targets=["passthrough-close", {"name": "passthrough-cache", "open_files": [5],
                                                          "release": ["unmount", "drop_caches"]}])
    assert scenario.fd_pressure.steps() == [
        ("passthrough-close", 10, "drop_caches"), ("passthrough-close", 20, "drop_caches"),
        ("passthrough-cache", 5, "unmount"), ("passthrough-cache", 5, "drop_caches")]
    assert scenario.fd_pressure.target_names() == ["passthrough-close", "passthrough-cache"]
    # The same target twice is fine as long as no step repeats.
    again = fd_scenario([CLOSE], [10], daemon_nofile=64,
                        targets=["passthrough-close", {"name": "passthrough-close", "release": ["unmount"]}])
    assert again.fd_pressure.steps() == [("passthrough-close", 10, "drop_caches"), ("passthrough-close", 10, "unmount")]
