"""fio: a typed workload cell -> a safe argv, running it, and parsing its json+ output.

fio only ever sees options from the allow-list below, with values generated from the
validated cell; files are ones bench.datafiles created. No job file, no shell.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.datafiles import FILE_PREFIX, file_size
from bench.errors import BenchError
from bench.scenario import SAFE_IOENGINES, WorkloadCell

FIO = "fio"
# Everything build_argv may emit.
ALLOWED_OPTIONS = frozenset({
    "name", "directory", "filename_format", "nrfiles", "openfiles", "size", "rw", "bs", "ioengine", "iodepth", "direct",
    "numjobs", "runtime", "time_based", "ramp_time", "rwmixread", "fsync", "end_fsync", "invalidate",
    "allow_file_create", "group_reporting", "output-format", "output", "mem",
})
# No '=', ':', '$', '%', whitespace or newline: fio gives those meaning (option syntax, file
# lists, environment expansion, arithmetic), so a value must never contain them.
_CLEAN_VALUE = re.compile(r"[A-Za-z0-9_./+@-]+")
# The one value with a '$': fio's own file counter, naming the files prepare_files made.
FILENAME_FORMAT = FILE_PREFIX + "$filenum"
_FORBIDDEN_ROOTS = (Path("/dev"), Path("/proc"), Path("/sys"))
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}
HUGE_PAGE = 2 << 20  # fio's default hugepage-size, the x86-64 default huge page


class FioError(BenchError):
    """fio could not run, failed, or produced output that cannot be parsed."""


# ---------------------------------------------------------------- argv


def build_argv(cell: WorkloadCell, files: list[Path], output: Path) -> list[str]:
    """fio's argv for `cell` on `files` (absolute, created by prepare_files), json+ to `output`."""
    if len(files) != cell.nrfiles:
        raise FioError(f"workload {cell.name} needs {cell.nrfiles} files, got {len(files)}")
    paths = [_checked_path(Path(f), must_exist=True) for f in files]
    directory = paths[0].parent
    if paths != [directory / f"{FILE_PREFIX}{i}" for i in range(cell.nrfiles)]:
        raise FioError(f"workload {cell.name}: files must be {FILE_PREFIX}0..{FILE_PREFIX}{cell.nrfiles - 1} of one directory")
    # (option, value); a value of None is a flag without '='.
    options: list[tuple[str, object]] = [
        ("name", cell.name),
        ("directory", directory),
        ("filename_format", FILENAME_FORMAT),
        ("nrfiles", cell.nrfiles),
        # fio splits `size` evenly over the files: exactly the prepared file size each. Every
        # job (numjobs) works over the same files, so numjobs does not multiply the data set.
        ("size", file_size(cell) * cell.nrfiles),
        ("rw", cell.rw),
        ("bs", cell.bs),
        ("ioengine", cell.ioengine),
        ("iodepth", cell.iodepth),
        ("direct", int(cell.direct)),
        ("numjobs", cell.numjobs),
        ("runtime", _ms(cell.runtime)),
        # fadvise(DONTNEED) does not drop a passthrough file's backing cache, so fio's default
        # invalidate=1 would leave targets in different cache states; the runner sets cache state.
        ("invalidate", 0),
        ("allow_file_create", 0),  # fio must only touch the files we prepared
        ("group_reporting", None),
        ("output-format", "json+"),
        ("output", _checked_path(Path(output), must_exist=False)),
    ]
    if cell.direct or cell.cache == "warm":
        # Looping over the files is only fair when no pass can hit what an earlier pass cached:
        # a cold buffered run reads or writes each byte once, with runtime as a cap.
        options.append(("time_based", None))
    if cell.openfiles is not None:
        options.append(("openfiles", cell.openfiles))
    if cell.rwmixread is not None:
        options.append(("rwmixread", cell.rwmixread))
    if cell.ramp_time:
        options.append(("ramp_time", _ms(cell.ramp_time)))
    if cell.fsync:
        options.append(("fsync", cell.fsync))
    if cell.end_fsync:
        options.append(("end_fsync", 1))
    if cell.buffers == "hugepages":
        options.append(("mem", "shmhuge"))
    argv = [FIO] + [f"--{key}" if value is None else f"--{key}={value}" for key, value in options]
    check_argv(argv)
    return argv


def hugepages_needed(cell: WorkloadCell) -> int:
    """2 MiB huge pages fio takes for `cell` with buffers: hugepages (mem=shmhuge): each job
    maps bs x iodepth plus a page of alignment, rounded up, and one more (found by trying
    fio 3.33: 1M x 4 needs 4 pages, 1M x 32 needs 18)."""
    per_job = -(-(cell.bs * cell.iodepth + HUGE_PAGE) // HUGE_PAGE) + 1
    return per_job * cell.numjobs


def _ms(seconds: float) -> str:
    # Rounded to whole milliseconds but never to 0, which fio reads as "no limit".
    return f"{max(1, round(seconds * 1000))}ms"


def _path_refusal(path: Path) -> str | None:
    """Why fio must not be given `path` on its face (no file system access), or None."""
    if not path.is_absolute():
        return "not absolute"
    if not _CLEAN_VALUE.fullmatch(str(path)):
        return ("only letters, digits and _ . / + @ - are allowed (':' '$' '%' '=' and spaces "
                "mean something to fio); use a work directory without them")
    if any(path == root or path.is_relative_to(root) for root in _FORBIDDEN_ROOTS):
        return "fio never touches devices or kernel files"
    return None


def _checked_path(path: Path, *, must_exist: bool) -> Path:
    """`path` if it is clean, canonical, and (when it must exist) a regular file; never a symlink."""
    reason = _path_refusal(path)
    if reason:
        raise FioError(f"refusing fio path {str(path)!r}: {reason}")
    checked = path if must_exist else path.parent
    try:
        canonical = checked.resolve(strict=True)
    except OSError as exc:
        raise FioError(f"refusing fio path {checked}: {exc.strerror or exc}") from None
    if canonical != checked:
        raise FioError(f"refusing fio path {checked}: not canonical, a symlink or '..' leads to {canonical}")
    if must_exist and not stat.S_ISREG(path.lstat().st_mode):
        raise FioError(f"refusing fio path {path}: not a regular file")
    if not must_exist and path.is_symlink():
        raise FioError(f"refusing fio output {path}: it is a symlink")
    return path


def check_argv(argv: list[str]) -> None:
    """Raise FioError unless argv is fio with allowed options, clean values, files and an output."""
    if not argv or argv[0] != FIO:
        raise FioError(f"refusing to run {argv[:1]}: not fio")
    seen = set()
    for arg in argv[1:]:
        key, has_value, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or key not in ALLOWED_OPTIONS:
            raise FioError(f"refusing fio argument {arg!r}: not an allowed option")
        if key == "filename_format":
            if value != FILENAME_FORMAT:
                raise FioError(f"refusing fio argument {arg!r}: the only file name format is {FILENAME_FORMAT}")
        elif has_value and not _CLEAN_VALUE.fullmatch(value):
            raise FioError(f"refusing fio argument {arg!r}: its value has characters fio would interpret")
        if key in ("directory", "output"):
            reason = _path_refusal(Path(value))
            if reason:
                raise FioError(f"refusing fio argument {arg[:200]!r}: {reason}")
        if key == "ioengine" and value not in SAFE_IOENGINES:
            raise FioError(f"refusing ioengine {value!r}: not one of {', '.join(SAFE_IOENGINES)}")
        seen.add(key)
    # Without these fio would pick files of its own naming, in the current directory.
    missing = {"directory", "filename_format", "output"} - seen
    if missing:
        raise FioError(f"refusing fio argv without --{' and --'.join(sorted(missing))}")


# ---------------------------------------------------------------- running


def start_fio(argv: list[str]) -> subprocess.Popen[str]:
    """Start fio (checked argv, no shell) in its own process group; stdout and stderr are pipes."""
    check_argv(argv)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            process_group=0,  # so stop_fio reaches the job processes fio forks
        )
    except OSError as exc:
        raise FioError(f"cannot start fio: {exc.strerror}; install it (Debian: apt install fio)") from None


def stop_fio(process: subprocess.Popen, grace: float = 5.0) -> None:
    """End a started fio and its job processes: SIGTERM to its group, SIGKILL after `grace` s."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_fio(process: subprocess.Popen, output: Path, timeout: float) -> FioResult:
    """Wait for a started fio, then parse `output`; on timeout stop it and raise FioError."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_fio(process)
        try:
            process.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            # Job processes setsid() away from fio's group; one blocked in FUSE keeps the pipes
            # open until the caller aborts the connection, so stop waiting for them here.
            for pipe in (process.stdout, process.stderr):
                pipe.close()
        raise FioError(f"fio did not finish within {timeout:g} s; stopped it") from None
    said = _tail(stderr)
    try:
        text = Path(output).read_text(errors="replace")
    except OSError as exc:
        raise FioError(f"fio (exit {process.returncode}) wrote no output {output}: {exc.strerror}{said}") from None
    try:
        result = parse_fio_output(text)
    except FioError as exc:
        raise FioError(f"{exc} (exit {process.returncode}){said}") from None
    if process.returncode != 0:
        raise FioError(f"fio exited with status {process.returncode}{said}")
    return result


def run_fio(argv: list[str], timeout: float) -> FioResult:
    """Run fio to the end and parse the json+ file named by its --output."""
    output = next((a.partition("=")[2] for a in argv if a.startswith("--output=")), None)
    if output is None:
        raise FioError("fio argv has no --output=FILE to read the results from")
    return wait_fio(start_fio(argv), Path(output), timeout)


def _tail(stderr: str, lines: int = 3) -> str:
    kept = [line for line in stderr.strip().splitlines() if line.strip()][-lines:]
    return f"; fio said: {' | '.join(kept)[:500]}" if kept else ""


def fio_version() -> str | None:
    """`fio --version` (e.g. 'fio-3.33'), or None when fio is missing or broken."""
    try:
        done = subprocess.run([FIO, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip()
    return version if done.returncode == 0 and version else None


# ---------------------------------------------------------------- parsing


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
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FioError(f"fio output lacks what fusebench needs: {where}: {first['msg']}") from None
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
        percentiles = dict.fromkeys(PERCENTILES)
    elif len(parts) == 1:
        fio_says = parts[0].clat_ns.percentile
        percentiles = {name: fio_says.get(p) for name, p in PERCENTILES.items()}
    else:
        # Percentiles of separate jobs cannot be averaged: recompute them from the merged histogram.
        percentiles = {name: percentile_from_bins(bins, p) for name, p in PERCENTILES.items()}
    bw_bytes = sum(part.bw_bytes for part in parts)
    return Direction(
        io_bytes=sum(part.io_bytes for part in parts),
        bw_bytes=bw_bytes,
        bw_mib_s=bw_bytes / (1 << 20),
        iops=sum(part.iops for part in parts),
        total_ios=sum(part.total_ios for part in parts),
        runtime_ms=max(part.runtime for part in parts),
        clat_mean_us=_mean_us([part.clat_ns for part in parts]),
        clat_p50_us=_us(percentiles["p50"]),
        clat_p99_us=_us(percentiles["p99"]),
        clat_p999_us=_us(percentiles["p999"]),
        lat_mean_us=_mean_us([part.lat_ns for part in parts]),
        clat_bins=dict(sorted(bins.items())),
    )


def percentile_from_bins(bins: dict[int, int], percentile: float) -> float | None:
    """fio's own rule: the first bin value whose cumulative count reaches percentile% of all."""
    total = sum(bins.values())
    if not total:
        return None
    seen = 0
    for value, count in sorted(bins.items()):
        seen += count
        if seen >= percentile / 100 * total:
            return float(value)
    return float(max(bins))


def _mean_us(latencies: list[_RawLatency]) -> float | None:
    samples = sum(lat.N for lat in latencies)
    return sum(lat.mean * lat.N for lat in latencies) / samples / 1000 if samples else None


def _us(ns: float | None) -> float | None:
    return None if ns is None else ns / 1000
