"""fio's bandwidth, IOPS and latency logs (write_bw_log, write_iops_log, write_lat_log, each
point averaged over log_avg_msec): the files fio writes for a prefix, and the one parser of them.

fio writes one file per job, PREFIX_KIND.JOB.log (JOB from 1), when the job ends. A line is
`time (ms), value, direction (0 read, 1 write, 2 trim), block size, offset[, priority]`; with
log_avg_msec each direction seen in a window has its own line. With group_reporting, fio 3.33
logs the whole group's bandwidth and IOPS in job 1's file and leaves the others empty: adding
up every job's file is right either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from statistics import fmean, median

from pydantic import BaseModel, ConfigDict

# The fio option that asks for each kind of log (its value: the prefix of the files).
LOG_OPTIONS: dict[str, tuple[str, ...]] = {
    "write_bw_log": ("bw",),
    "write_iops_log": ("iops",),
    "write_lat_log": ("lat", "clat", "slat"),
}
# kind -> the unit it is read in, the factor from fio's unit (KiB/s, IOPS, ns) and how jobs and
# directions add up: throughput sums, latency averages.
KINDS: dict[str, tuple[str, float, Callable[[list[float]], float]]] = {
    "bw": ("MiB/s", 1 / 1024, sum),
    "iops": ("IOPS", 1.0, sum),
    "lat": ("us", 1e-3, fmean),
    "clat": ("us", 1e-3, fmean),
    "slat": ("us", 1e-3, fmean),
}


class FioLog(BaseModel):
    """One kind of log of one fio run: every job's points per time step, added up (throughput)
    or averaged (latency), in `unit`; `damaged` names the lines left out."""

    model_config = ConfigDict(frozen=True)

    kind: str
    unit: str
    jobs: int
    t_s: list[float]    # the time step's time, seconds since the job started
    value: list[float]
    damaged: list[str]  # `file:line: why`, e.g. the last line of a file cut short


def log_files(prefix: Path, kind: str) -> list[Path]:
    """The files fio wrote for `kind` with `prefix`, one per job in job order (none: not asked for)."""
    files: list[Path] = []
    while (path := prefix.with_name(f"{prefix.name}_{kind}.{len(files) + 1}.log")).is_file():
        files.append(path)
    return files


def read_log(prefix: Path, kind: str) -> FioLog | None:
    """The `kind` log fio wrote with `prefix`, its jobs added up per time step; None when there
    is none. Lines that cannot be read (a file cut short) are left out and named, never raised."""
    unit, factor, combine = KINDS[kind]
    files = log_files(prefix, kind)
    if not files:
        return None
    damaged: list[str] = []
    jobs = [_points(path, damaged) for path in files]
    step = _step(jobs)
    # time step -> job -> direction -> values: a job's own lines in one step are averaged first.
    steps: dict[int, dict[int, dict[int, list[float]]]] = {}
    starts: dict[int, float] = {}  # time step -> its first line's time
    for job, points in enumerate(jobs):
        for t_ms, value, direction in points:
            index = round(t_ms / step)
            steps.setdefault(index, {}).setdefault(job, {}).setdefault(direction, []).append(value)
            starts[index] = min(starts.get(index, t_ms), t_ms)
    times, values = [], []
    for index in sorted(steps):
        per_job = [combine([fmean(seen) for seen in directions.values()]) for directions in steps[index].values()]
        times.append(starts[index] / 1000)
        values.append(combine(per_job) * factor)
    return FioLog(kind=kind, unit=unit, jobs=len(files), t_s=times, value=values, damaged=damaged)


def _points(path: Path, damaged: list[str]) -> list[tuple[float, float, int]]:
    """(time ms, value, direction) of every whole line of one job's file; what is not, said once
    in `damaged`."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        damaged.append(f"{path.name}: cannot be read: {exc.strerror}")
        return []
    lines = text.split("\n")
    # Every line fio writes ends in a newline: a last line without one was cut short.
    whole, cut = lines[:-1], lines[-1]
    points, bad = [], []
    for number, line in enumerate(whole, start=1):
        fields = line.split(",")
        try:
            t_ms, value, direction = float(fields[0]), float(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            bad.append(number)
            continue
        if 0 <= t_ms < math.inf and 0 <= value < math.inf:
            points.append((t_ms, value, direction))
        else:
            bad.append(number)
    if bad:
        damaged.append(f"{path.name}:{bad[0]}: not a log line ({len(bad)} such line{'s' * (len(bad) > 1)})")
    if cut:
        damaged.append(f"{path.name}:{len(lines)}: cut short")
    return points


def _step(jobs: list[list[tuple[float, float, int]]]) -> float:
    """The logs' interval in ms: the usual gap between a job's successive times (its last line,
    the partial window fio adds when the job ends, left out). Jobs started a few ms apart then
    share each step; a log of one point per job is one step."""
    gaps = []
    for points in jobs:
        times = sorted({t for t, _, _ in points})
        gaps += [later - earlier for earlier, later in zip(times, times[1:])][: max(1, len(times) - 2)]
    if gaps:
        return median(gaps)
    return max((t for points in jobs for t, _, _ in points), default=1.0) or 1.0
