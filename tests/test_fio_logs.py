"""bench.fio_logs: fio's bandwidth, IOPS and latency logs read back, jobs added up, damage named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fio_logs import KINDS, LOG_OPTIONS, log_files, read_log


def write(prefix: Path, kind: str, job: int, text: str) -> Path:
    """One job's log file as fio names it."""
    path = prefix.with_name(f"{prefix.name}_{kind}.{job}.log")
    path.write_text(text)
    return path


def test_every_log_fio_is_asked_for_has_a_kind() -> None:
    assert {kind for kinds in LOG_OPTIONS.values() for kind in kinds} == set(KINDS)


def test_no_files_is_no_log(tmp_path: Path) -> None:
    assert read_log(tmp_path / "run", "bw") is None
    assert log_files(tmp_path / "run", "bw") == []


def test_one_job_in_mib_per_second(tmp_path: Path) -> None:
    # log_avg_msec=250: time (ms), value (KiB/s), direction, block size, offset (fio 3.33), priority (later fios)
    write(tmp_path / "run", "bw", 1, "250, 102400, 0, 0, 0\n500, 204800, 0, 0, 0\n750, 51200, 0, 0, 0, 0\n")
    log = read_log(tmp_path / "run", "bw")
    assert (log.kind, log.unit, log.jobs, log.damaged) == ("bw", "MiB/s", 1, [])
    assert log.t_s == [0.25, 0.5, 0.75] and log.value == [100.0, 200.0, 50.0]


def test_jobs_are_added_up_per_time_step_even_a_few_ms_apart(tmp_path: Path) -> None:
    write(tmp_path / "run", "iops", 1, "1000, 300, 0, 0, 0\n2000, 310, 0, 0, 0\n3000, 320, 0, 0, 0\n")
    write(tmp_path / "run", "iops", 2, "1004, 100, 0, 0, 0\n2003, 110, 0, 0, 0\n3001, 120, 0, 0, 0\n")
    write(tmp_path / "run", "iops", 3, "1002, 10, 0, 0, 0\n2001, 10, 0, 0, 0\n")  # ended early
    log = read_log(tmp_path / "run", "iops")
    assert log.jobs == 3 and log.t_s == [1.0, 2.0, 3.0] and log.value == [410.0, 430.0, 440.0]


def test_reads_and_writes_add_up_and_a_jobs_own_lines_in_one_step_average(tmp_path: Path) -> None:
    # randrw: a line per direction each window; fio's last, partial window falls in the step before it.
    write(tmp_path / "run", "iops", 1, "500, 70, 0, 0, 0\n500, 30, 1, 0, 0\n1000, 80, 0, 0, 0\n1000, 20, 1, 0, 0\n"
                                       "1010, 60, 0, 0, 0\n1010, 40, 1, 0, 0\n")
    log = read_log(tmp_path / "run", "iops")
    assert log.t_s == [0.5, 1.0] and log.value == [100.0, 100.0]


def test_latency_averages_jobs_in_microseconds(tmp_path: Path) -> None:
    write(tmp_path / "run", "clat", 1, "100, 40000, 0, 0, 0\n200, 60000, 0, 0, 0\n")
    write(tmp_path / "run", "clat", 2, "100, 20000, 0, 0, 0\n200, 20000, 0, 0, 0\n")
    log = read_log(tmp_path / "run", "clat")
    assert log.unit == "us" and log.value == [30.0, 40.0]


def test_a_file_cut_short_keeps_its_whole_lines_and_says_where(tmp_path: Path) -> None:
    write(tmp_path / "run", "bw", 1, "250, 1024, 0, 0, 0\n500, 2048, 0, 0, 0\n750, 20")  # 750, 2048... cut
    log = read_log(tmp_path / "run", "bw")
    assert log.value == [1.0, 2.0]
    assert log.damaged == ["run_bw.1.log:3: cut short"]


def test_lines_that_are_not_a_log_are_left_out_and_counted_once(tmp_path: Path) -> None:
    write(tmp_path / "run", "bw", 1, "250, 1024, 0, 0, 0\ngarbage\n500, -5, 0, 0, 0\n750, nan, 0, 0, 0\n"
                                     "1000, 1024\n1250, 1024, 0, 0, 0\n")
    log = read_log(tmp_path / "run", "bw")
    assert log.t_s == [0.25, 1.25] and log.value == [1.0, 1.0]
    assert log.damaged == ["run_bw.1.log:2: not a log line (4 such lines)"]


@pytest.mark.parametrize("text", ["", "\x00\x00\x00", "250"])
def test_an_empty_or_unreadable_file_is_a_log_without_points(tmp_path: Path, text: str) -> None:
    write(tmp_path / "run", "bw", 1, text)
    log = read_log(tmp_path / "run", "bw")
    assert log.t_s == [] and log.value == [] and bool(log.damaged) == bool(text)


def test_a_single_point_per_job_is_one_step(tmp_path: Path) -> None:
    write(tmp_path / "run", "bw", 1, "1000, 1024, 0, 0, 0\n")
    write(tmp_path / "run", "bw", 2, "1003, 1024, 0, 0, 0\n")
    log = read_log(tmp_path / "run", "bw")
    assert log.value == [2.0]


def test_files_are_taken_in_job_order_up_to_the_first_missing_job(tmp_path: Path) -> None:
    first, second = write(tmp_path / "r", "bw", 1, ""), write(tmp_path / "r", "bw", 2, "")
    write(tmp_path / "r", "bw", 4, "")
    write(tmp_path / "r1", "bw", 1, "")  # another run whose id starts alike
    assert log_files(tmp_path / "r", "bw") == [first, second]
