"""bench.monitor sampling real fio runs (and a bindfs daemon)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bench.monitor import Monitor, MonitorResult


def run_fio(directory: Path, *, runtime_s: float = 1.5, numjobs: int = 2) -> subprocess.Popen:
    """A small time-based random read job inside `directory` (a temp dir of the test)."""
    return subprocess.Popen(
        ["fio", "--name=mon", f"--directory={directory}", "--size=8M", "--rw=randread", "--bs=4k",
         "--ioengine=psync", "--time_based", f"--runtime={runtime_s}", f"--numjobs={numjobs}",
         "--output-format=json", f"--output={directory / 'fio.json'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def monitored(monitor: Monitor, fio: subprocess.Popen) -> tuple[MonitorResult, float]:
    started = time.monotonic()
    monitor.start(fio.pid)
    assert fio.wait(60) == 0
    result = monitor.stop()
    return result, time.monotonic() - started


def role(result: MonitorResult, name: str) -> list[dict]:
    return [row for row in result.samples if row.role == name]


@pytest.mark.integration
def test_samples_fio_and_its_jobs_at_about_the_requested_rate(require_fio, tmp_path: Path) -> None:
    result, elapsed = monitored(Monitor(hz=10, run_id="r1"), run_fio(tmp_path))

    assert all(row.run_id == "r1" for row in result.samples)
    assert 0.5 * elapsed * 10 <= result.summary.samples <= 1.5 * elapsed * 10 + 2
    assert result.summary.fio_cpu_user_s + result.summary.fio_cpu_sys_s > 0
    fio_rows = role(result, "fio")
    assert max(row.pids for row in fio_rows) >= 3  # the fio parent and both job processes
    assert [row.cpu_user_s for row in fio_rows] == sorted(row.cpu_user_s for row in fio_rows)
    assert {row.role for row in result.samples} == {"fio", "system"}
    assert result.summary.daemon_cpu_user_s is None and result.summary.daemon_fds_max is None
    assert result.summary.system_cpu_sys_s > 0 and result.summary.file_nr_max > 0
    assert 0 < result.summary.sampler_cpu_s < 0.5 * elapsed


@pytest.mark.integration
def test_daemon_role_samples_the_fuse_server(require_fio, bindfs_mount, tmp_path: Path) -> None:
    fio = run_fio(bindfs_mount.path, runtime_s=1.0, numjobs=1)
    result, _ = monitored(Monitor(hz=20, daemon_pid=bindfs_mount.daemon_pid), fio)

    daemon_rows = role(result, "daemon")
    assert len(daemon_rows) == result.summary.samples
    assert all(row.pids == 1 for row in daemon_rows)
    assert result.summary.daemon_cpu_user_s + result.summary.daemon_cpu_sys_s > 0
    assert result.summary.daemon_fds_max >= 4  # stdio, /dev/fuse and the file fio has open
    assert result.summary.daemon_rss_max_kib > 0


def test_a_missing_fio_pid_gives_empty_figures_not_an_error() -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    monitor = Monitor(hz=50)
    monitor.start(finished.pid)
    time.sleep(0.1)
    result = monitor.stop()
    assert result.summary.fio_cpu_user_s == 0 and result.summary.samples >= 2
    assert all(row.pids == 0 for row in role(result, "fio"))
