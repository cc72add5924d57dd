"""fio: a typed workload cell -> a safe argv, and running it (its output: bench.fio_output).

fio only ever sees options from the allow-list below, with values generated from the
validated cell; files are ones bench.datafiles created. No job file, no shell.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from bench.datafiles import (
    SHARED_FORMAT,
    SPLIT_FORMAT,
    file_names,
    file_size,
    filename_format,
    files_per_job,
)
from bench.fio_logs import LOG_OPTIONS
from bench.fio_output import FioError, FioResult, parse_fio_output
from bench.processes import Started, stderr_tail
from bench.scenario import WorkloadCell
from bench.stop import StopToken
from bench.vocabulary import IOENGINES, METADATA_ENGINES

FIO = "fio"
# Everything build_argv may emit.
ALLOWED_OPTIONS = frozenset({
    "name", "directory", "filename_format", "nrfiles", "openfiles", "size", "rw", "bs", "ioengine", "iodepth", "direct",
    "numjobs", "runtime", "time_based", "ramp_time", "rwmixread", "fsync", "end_fsync", "invalidate",
    "allow_file_create", "group_reporting", "output-format", "output", "mem", "stat_type", "file_service_type",
    "log_avg_msec", *LOG_OPTIONS,
})
# Options whose value is a path fio writes or works in.
PATH_OPTIONS = frozenset({"directory", "output", *LOG_OPTIONS})
# No '=', ':', '$', '%', whitespace or newline: fio gives those meaning (option syntax, file
# lists, environment expansion, arithmetic), so a value must never contain them.
_CLEAN_VALUE = re.compile(r"[A-Za-z0-9_./+@-]+")
# The only values with a '$': fio's file counter (and job number), naming the files prepare_files made.
FILENAME_FORMATS = (SHARED_FORMAT, SPLIT_FORMAT)
_FORBIDDEN_ROOTS = (Path("/dev"), Path("/proc"), Path("/sys"))
HUGE_PAGE = 2 << 20  # fio's default hugepage-size, the x86-64 default huge page


# ---------------------------------------------------------------- argv


def build_argv(cell: WorkloadCell, files: list[Path], output: Path, logs: Path | None = None) -> list[str]:
    """fio's argv for `cell` on `files` (absolute, created by prepare_files), json+ to `output`,
    and with `logs`, its bandwidth, IOPS and latency logs to files named `logs`_KIND.JOB.log
    (bench.fio_logs) unless the cell's `log_interval` is 0."""
    if len(files) != cell.nrfiles:
        raise FioError(f"workload {cell.name} needs {cell.nrfiles} files, got {len(files)}")
    # filecreate makes the files (its own O_CREAT, not fio's layout): only their directory exists.
    paths = [_checked_path(Path(f), must_exist=cell.ioengine != "filecreate") for f in files]
    directory = paths[0].parent
    names = file_names(cell)
    if paths != [directory / name for name in names]:
        raise FioError(f"workload {cell.name}: files must be {names[0]}..{names[-1]} of one directory")
    # (option, value); a value of None is a flag without '='.
    options: list[tuple[str, object]] = [
        ("name", cell.name),
        ("directory", directory),
        ("filename_format", filename_format(cell)),
        ("nrfiles", files_per_job(cell)),
        # fio splits `size` evenly over a job's files: exactly the prepared file size each. Every
        # job (numjobs) works over the same files, so numjobs does not multiply the data set,
        # except with metadata engines, where each job has files of its own.
        ("size", file_size(cell) * files_per_job(cell)),
        ("rw", cell.rw),
        # A metadata engine's "I/O" is its one operation on a file: a block is the whole file.
        ("bs", file_size(cell) if cell.ioengine in METADATA_ENGINES else cell.bs),
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
    if cell.loops():
        options.append(("time_based", None))
    if cell.stat_type is not None:
        options.append(("stat_type", cell.stat_type))
    if cell.file_service_type is not None:
        options.append(("file_service_type", cell.file_service_type))
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
    interval = cell.log_interval_s() if logs is not None else None
    if interval:
        prefix = _checked_path(Path(logs), must_exist=False)
        options += [(option, prefix) for option in LOG_OPTIONS] + [("log_avg_msec", _whole_ms(interval))]
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
    return f"{_whole_ms(seconds)}ms"


def _whole_ms(seconds: float) -> int:
    # Rounded to whole milliseconds but never to 0, which fio reads as "no limit" (or, for
    # log_avg_msec, as "log every I/O").
    return max(1, round(seconds * 1000))


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
            if value not in FILENAME_FORMATS:
                raise FioError(f"refusing fio argument {arg!r}: the only file name formats are "
                               f"{' and '.join(FILENAME_FORMATS)}")
        elif has_value and not _CLEAN_VALUE.fullmatch(value):
            raise FioError(f"refusing fio argument {arg!r}: its value has characters fio would interpret")
        if key in PATH_OPTIONS:
            reason = _path_refusal(Path(value))
            if reason:
                raise FioError(f"refusing fio argument {arg[:200]!r}: {reason}")
        if key == "ioengine" and value not in IOENGINES:
            raise FioError(f"refusing ioengine {value!r}: not one of {', '.join(IOENGINES)}")
        seen.add(key)
    # Without these fio would pick files of its own naming, in the current directory.
    missing = {"directory", "filename_format", "output"} - seen
    if missing:
        raise FioError(f"refusing fio argv without --{' and --'.join(sorted(missing))}")


# ---------------------------------------------------------------- running


class FioProcess:
    """fio started on a checked argv (bench.processes.Started: no shell, its own process group)."""

    def __init__(self, argv: list[str]) -> None:
        check_argv(argv)
        self.output = Path(next(arg.partition("=")[2] for arg in argv if arg.startswith("--output=")))
        try:
            self._started = Started(argv)
        except OSError as exc:
            raise FioError(f"cannot start fio: {exc.strerror}; install it (Debian: apt install fio)") from None

    @property
    def pid(self) -> int:
        """fio's pid (its process group id too)."""
        return self._started.pid

    def wait(self, timeout: float, stop: StopToken | None = None) -> FioResult:
        """Wait for fio, then parse its output. Past `timeout` it is stopped (FioError); when
        `stop` abandons the run meanwhile, it is stopped too (Interrupted)."""
        try:
            status, _, stderr = self._started.wait(timeout, stop)
        except subprocess.TimeoutExpired:
            raise FioError(f"fio did not finish within {timeout:g} s; stopped it") from None
        said = stderr_tail(stderr, "fio")
        try:
            text = self.output.read_text(errors="replace")
        except OSError as exc:
            raise FioError(f"fio (exit {status}) wrote no output {self.output}: {exc.strerror}{said}") from None
        try:
            result = parse_fio_output(text)
        except FioError as exc:
            raise FioError(f"{exc} (exit {status}){said}") from None
        if status != 0:
            raise FioError(f"fio exited with status {status}{said}")
        return result

    def stop(self) -> None:
        """End fio and its job processes."""
        self._started.stop()


def fio_version() -> str | None:
    """`fio --version` (e.g. 'fio-3.33'), or None when fio is missing or broken."""
    try:
        done = subprocess.run([FIO, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip()
    return version if done.returncode == 0 and version else None
