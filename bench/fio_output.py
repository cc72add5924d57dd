"""fio's json+ output -> a typed FioResult: the one parser of fio's JSON (the runner uses it
for each run, the analysis for the latency histograms of runs already in a results folder).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError, first_problem
from bench.percentile import percentiles

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}


class FioError(BenchError):
    """fio could not run, failed, or produced output that cannot be parsed."""


class _Raw(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _RawLatency(_Raw):
    mean: float = 0.0
    N: int = 0
    percentile: dict[float, float] = {}
    bins: dict[int, int] = {}


class _RawDirection(_Raw):
    io_bytes: int
    bw_bytes: float
    iops: float
    runtime: int
    total_ios: int
    clat_ns: _RawLatency = _RawLatency()
    lat_ns: _RawLatency = _RawLatency()


class _RawJob(_Raw):
    jobname: str
    error: int = 0
    job_runtime: int = 0
    usr_cpu: float
    sys_cpu: float
    ctx: int
    read: _RawDirection
    write: _RawDirection


class _RawOutput(_Raw):
    version: str = Field(alias="fio version")
    jobs: list[_RawJob] = Field(min_length=1)


class Direction(BaseModel):
    """One direction (read or write) summed over fio's job records; latencies in microseconds."""

    model_config = ConfigDict(frozen=True)

    io_bytes: int
    bw_bytes: float
    bw_mib_s: float
    iops: float
    total_ios: int
    runtime_ms: int
    clat_mean_us: float | None
    clat_p50_us: float | None
    clat_p99_us: float | None
    clat_p999_us: float | None
    lat_mean_us: float | None
    clat_bins: dict[int, int]  # json+ histogram: completion latency (ns) -> count; sums across runs


class FioResult(BaseModel):
    """One fio run. CPU percentages are of the jobs' runtime, as fio's group_reporting defines them."""

    model_config = ConfigDict(frozen=True)

    version: str
    error: int  # always 0: a job error raises FioError instead
    jobs: int  # job records in the output (1 with group_reporting)
    read: Direction
    write: Direction
    usr_cpu: float
    sys_cpu: float
    ctx: int
    runtime_s: float


def parse_fio_output(text: str) -> FioResult:
    """Parse fio's json (or json+) output; text before the JSON (warnings) is skipped."""
    start = re.search(r"^\{", text, re.MULTILINE)
    if start is None:
        raise FioError(f"fio output holds no JSON: {text.strip()[:200]!r}")
    try:
        data, _ = json.JSONDecoder().raw_decode(text, start.start())
        raw = _RawOutput.model_validate(data)
    except json.JSONDecodeError as exc:
        raise FioError(f"fio output is not valid JSON (line {exc.lineno}: {exc.msg}); fio may have been killed") from None
    except ValidationError as exc:
        raise FioError(f"fio output lacks what fusebench needs: {first_problem(exc)}") from None
    for job in raw.jobs:
        if job.error:
            raise FioError(f"fio job {job.jobname!r} failed with error {job.error} ({os.strerror(job.error)})")
    cpu_ms = sum(job.job_runtime for job in raw.jobs)
    return FioResult(
        version=raw.version,
        error=0,
        jobs=len(raw.jobs),
        read=_direction([job.read for job in raw.jobs]),
        write=_direction([job.write for job in raw.jobs]),
        usr_cpu=sum(job.usr_cpu * job.job_runtime for job in raw.jobs) / cpu_ms if cpu_ms else 0.0,
        sys_cpu=sum(job.sys_cpu * job.job_runtime for job in raw.jobs) / cpu_ms if cpu_ms else 0.0,
        ctx=sum(job.ctx for job in raw.jobs),
        runtime_s=max(max(job.read.runtime, job.write.runtime) for job in raw.jobs) / 1000,
    )


def _direction(parts: list[_RawDirection]) -> Direction:
    bins: Counter[int] = Counter()
    for part in parts:
        bins.update(part.clat_ns.bins)
    if not sum(part.total_ios for part in parts):
        at = dict.fromkeys(PERCENTILES)
    elif len(parts) == 1:
        fio_says = parts[0].clat_ns.percentile
        at = {name: fio_says.get(p) for name, p in PERCENTILES.items()}
    else:
        # Percentiles of separate jobs cannot be averaged: recompute them from the merged histogram.
        at = dict(zip(PERCENTILES, percentiles(bins, list(PERCENTILES.values()))))
    bw_bytes = sum(part.bw_bytes for part in parts)
    return Direction(
        io_bytes=sum(part.io_bytes for part in parts),
        bw_bytes=bw_bytes,
        bw_mib_s=bw_bytes / (1 << 20),
        iops=sum(part.iops for part in parts),
        total_ios=sum(part.total_ios for part in parts),
        runtime_ms=max(part.runtime for part in parts),
        clat_mean_us=_mean_us([part.clat_ns for part in parts]),
        clat_p50_us=_us(at["p50"]),
        clat_p99_us=_us(at["p99"]),
        clat_p999_us=_us(at["p999"]),
        lat_mean_us=_mean_us([part.lat_ns for part in parts]),
        clat_bins=dict(sorted(bins.items())),
    )


def _mean_us(latencies: list[_RawLatency]) -> float | None:
    samples = sum(lat.N for lat in latencies)
    return sum(lat.mean * lat.N for lat in latencies) / samples / 1000 if samples else None


def _us(ns: float | None) -> float | None:
    return None if ns is None else ns / 1000


def read_fio_output(path: Path) -> FioResult:
    """Parse a fio output file (FioError when it is missing, unreadable or not fio's JSON)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise FioError(f"cannot read fio output {path}: {exc.strerror}") from None
    return parse_fio_output(text)
