"""Small named files for the workloads that open files one by one: the fd-pressure steps and
the open/close loops. Created once under a directory fusebench owns, then reused.

A tree of a million files is made in seconds: one directory listing finds what exists, and only
the missing names are created, in parallel over os.cpu_count() worker processes when there are
many (each creates its share with dir_fd-relative O_CREAT|O_EXCL opens). A worker only makes
system calls and then _exits, so forking a caller with threads is safe.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import stat
import struct
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

FILE_CONTENT = b"fusebench small file\n"
PARALLEL_THRESHOLD = 20_000  # fewer missing files than this are created in-process (no worker start-up)
WORKERS: int | None = None  # worker processes for a big tree (None: os.cpu_count())
PROGRESS_INTERVAL_S = 2.0  # at most one progress line this often
_POLL_S = 0.05  # how often the caller looks at the workers
_CHECK_EVERY = 1024  # files a worker creates between looks at the stop flag (and progress counter updates)
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def file_name(index: int) -> str:
    """Name of the index-th small file."""
    return f"f{index:06d}"


def missing_indices(directory: Path, count: int) -> list[int]:
    """The indices below `count` whose file is not in `directory` (one listing)."""
    existing = set(os.listdir(directory))
    return [index for index in range(count) if file_name(index) not in existing]


def _create(dir_fd: int, indices: Sequence[int], done: Callable[[int], None] | None = None,
            stopped: Callable[[], bool] | None = None, empty: bool = False) -> int:
    """Create the files of `indices` relative to `dir_fd` (an existing one is left as it is),
    empty ones with one mknod each; how many were created. `done(n)` is told the running total every _CHECK_EVERY files, and
    the loop ends early once `stopped()` is true."""
    created = 0
    for position, index in enumerate(indices):
        if position % _CHECK_EVERY == 0 and position:
            if done is not None:
                done(created)
            if stopped is not None and stopped():
                break
        try:
            if empty:
                os.mknod(file_name(index), 0o644 | stat.S_IFREG, dir_fd=dir_fd)
                created += 1
                continue
            fd = os.open(file_name(index), _FLAGS, 0o644, dir_fd=dir_fd)
        except FileExistsError:  # made by someone else since the listing: kept untouched
            continue
        try:
            if os.write(fd, FILE_CONTENT) != len(FILE_CONTENT):
                raise OSError(f"short write to {file_name(index)}")
        finally:
            os.close(fd)
        created += 1
    if done is not None:
        done(created)
    return created


def _reporter(progress: Callable[[str], None] | None, total: int) -> Callable[[int], None] | None:
    """A `done` callback telling `progress` how far the in-process creation is, at most every
    PROGRESS_INTERVAL_S (a big tree on a one-CPU machine)."""
    if progress is None:
        return None
    last = time.monotonic()

    def done(created: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_INTERVAL_S and created < total:
            last = time.monotonic()
            progress(f"created {created} of {total} files")

    return done


def _child(dir_fd: int, indices: Sequence[int], slot: int, shared: mmap.mmap, report_fd: int,
           empty: bool) -> NoReturn:
    """A forked worker: create its share, write the first error (errno, strerror, filename) to
    `report_fd`, and exit without ever returning into the caller's code. It only makes system
    calls, so forking a caller that has threads is safe."""
    status = 1
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)  # the caller's handlers are not for this process

        def done(created: int) -> None:
            struct.pack_into("q", shared, 8 * slot, created)

        _create(dir_fd, indices, done, lambda: shared[-1] != 0, empty)
        status = 0
    except OSError as exc:
        shared[-1] = 1  # the other workers stop early: the caller raises anyway
        os.write(report_fd, json.dumps([exc.errno, exc.strerror or str(exc), exc.filename]).encode())
    finally:
        os._exit(status)


def _fork() -> int:
    with warnings.catch_warnings():  # Python 3.12+ warns about forking with threads: see _child
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _failure(directory: Path, status: int, report: bytes) -> OSError | None:
    """What a worker's exit status and report say went wrong."""
    if report:
        number, strerror, filename = json.loads(report)
        return OSError(number, strerror, None if filename is None else os.path.join(directory, str(filename)))
    if os.waitstatus_to_exitcode(status) != 0:
        return OSError(f"a worker creating files in {directory} ended with status "
                       f"{os.waitstatus_to_exitcode(status)} without a report (killed?)")
    return None


def _create_parallel(directory: Path, dir_fd: int, indices: list[int], workers: int,
                     progress: Callable[[str], None] | None, empty: bool) -> None:
    shared = mmap.mmap(-1, 8 * workers + 1)  # MAP_SHARED: a created-files counter per worker, a stop byte
    share = -(-len(indices) // workers)
    running: dict[int, int] = {}  # pid -> the read end of its report pipe
    failures: list[OSError] = []
    try:
        for slot in range(workers):
            read_fd, write_fd = os.pipe()
            pid = _fork()
            if pid == 0:
                os.close(read_fd)
                _child(dir_fd, indices[slot * share:(slot + 1) * share], slot, shared, write_fd, empty)
            os.close(write_fd)
            running[pid] = read_fd
        last = time.monotonic()
        while running:
            for pid in list(running):
                ended, status = os.waitpid(pid, os.WNOHANG)
                if ended:
                    read_fd = running.pop(pid)
                    failure = _failure(directory, status, os.read(read_fd, 65536))
                    os.close(read_fd)
                    if failure is not None:
                        failures.append(failure)
                        shared[-1] = 1
            if running:
                time.sleep(_POLL_S)
                if progress is not None and time.monotonic() - last >= PROGRESS_INTERVAL_S:
                    last = time.monotonic()
                    created = sum(struct.unpack_from(f"{workers}q", shared))
                    progress(f"created {created} of {len(indices)} files")
    finally:
        shared[-1] = 1
        for pid, read_fd in running.items():  # only when interrupted: stop them, then reap
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            os.close(read_fd)
        shared.close()
    if failures:  # one with an errno first: it is the cause, the others stopped because of it
        raise sorted(failures, key=lambda failure: failure.errno is None)[0]


def create_files(directory: Path, count: int, progress: Callable[[str], None] | None = None,
                 empty: bool = False) -> Path:
    """`count` small files in `directory` (a workspace.owned_dir; created once, existing ones kept
    as they are), `empty` ones (one mknod each: half the time of open, write and close). Only the missing names are created: in this process when fewer than
    PARALLEL_THRESHOLD are missing, else over os.cpu_count() worker processes; meanwhile
    `progress("created X of Y files")` (Y: the missing ones) at most every PROGRESS_INTERVAL_S.
    A failure (ENOSPC, EMFILE...) is raised as OSError; the files made so far stay."""
    directory = Path(directory)
    indices = missing_indices(directory, count)
    workers = min(WORKERS or os.cpu_count() or 1, -(-len(indices) // _CHECK_EVERY))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if len(indices) < PARALLEL_THRESHOLD or workers < 2:
            _create(dir_fd, indices, _reporter(progress, len(indices)), empty=empty)
        else:
            _create_parallel(directory, dir_fd, indices, workers, progress, empty)
    finally:
        os.close(dir_fd)
    return directory
