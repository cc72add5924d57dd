"""A fixture results folder copied with fio's bandwidth and IOPS logs written for every good
fio run, in fio 3.33's format, `log_avg_msec: 250`, the rate split over two jobs' files (as
fio writes them without group_reporting): the jobs' times a few ms apart, a ramp over the
first second, then the run's own rate, for 3 s."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from bench.records import STATUS_OK
from bench.results import FIO_LOGS_DIR, ResultsFolder, fio_logs_prefix

INTERVAL_MS, STEPS, JOBS = 250, 12, 2


def ramp(step: int) -> float:
    """The share of the run's rate reached in a time step (1-based): a ramp over the first second."""
    return min(1.0, step / 4)


def write_log(prefix: Path, kind: str, job: int, values: list[float], late_ms: int = 0) -> Path:
    """One job's log as fio names and writes it: `time, value, direction, 0, 0` per window."""
    path = prefix.with_name(f"{prefix.name}_{kind}.{job}.log")
    path.write_text("".join(f"{step * INTERVAL_MS + late_ms}, {round(value)}, 0, 0, 0\n"
                            for step, value in enumerate(values, start=1)))
    return path


def with_logs(source: Path, destination: Path) -> Path:
    """A copy of the folder `source` at `destination` with logs for its good fio runs."""
    shutil.copytree(source, destination)
    runs = ResultsFolder(destination).runs()
    (destination / FIO_LOGS_DIR).mkdir()
    for run in runs[runs["status"] == STATUS_OK].itertuples():
        prefix = fio_logs_prefix(destination, run.run_id)
        rates = {"bw": np.nansum([run.read_bw_mib_s, run.write_bw_mib_s]) * 1024,
                 "iops": np.nansum([run.read_iops, run.write_iops])}
        for kind, rate in rates.items():
            for job in range(1, JOBS + 1):
                write_log(prefix, kind, job, [rate / JOBS * ramp(step) for step in range(1, STEPS + 1)], late_ms=job)
    return destination
