"""Small named files for the workloads that open files one by one: the fd-pressure steps and
the open/close loops. Created once under a directory fusebench owns, then reused.

One directory listing finds what exists, and only the missing names are created, with
dir_fd-relative calls. A million empty files take about 23 s here, in one process: creates in
one directory are serialised by its lock, so worker processes measured no faster.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

FILE_CONTENT = b"fusebench small file\n"
PROGRESS_INTERVAL_S = 2.0  # at most one progress line this often
_CHECK_EVERY = 1024  # files created between looks at the clock for a progress line
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def file_name(index: int) -> str:
    """Name of the index-th small file."""
    return f"f{index:06d}"


def missing_indices(directory: Path, count: int) -> list[int]:
    """The indices below `count` whose file is not in `directory` (one listing)."""
    existing = set(os.listdir(directory))
    return [index for index in range(count) if file_name(index) not in existing]


def _create(dir_fd: int, index: int, empty: bool) -> None:
    """The index-th file relative to `dir_fd`, empty (one mknod) or with FILE_CONTENT; one made
    by someone else since the listing is kept untouched."""
    try:
        if empty:
            os.mknod(file_name(index), 0o644 | stat.S_IFREG, dir_fd=dir_fd)
            return
        fd = os.open(file_name(index), _FLAGS, 0o644, dir_fd=dir_fd)
    except FileExistsError:
        return
    try:
        if os.write(fd, FILE_CONTENT) != len(FILE_CONTENT):
            raise OSError(f"short write to {file_name(index)}")
    finally:
        os.close(fd)


def create_files(directory: Path, count: int, progress: Callable[[str], None] | None = None,
                 empty: bool = False) -> Path:
    """`count` small files in `directory` (a workspace.owned_dir; created once, existing ones kept
    as they are), `empty` ones (one mknod each: half the time of open, write and close). Only
    the missing names are created; meanwhile `progress("created X of Y files")` (Y: the missing
    ones) at most every PROGRESS_INTERVAL_S. A failure (ENOSPC, EMFILE...) is raised as OSError;
    the files made so far stay."""
    directory = Path(directory)
    indices = missing_indices(directory, count)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    last = time.monotonic()
    try:
        for position, index in enumerate(indices):
            due = position and position % _CHECK_EVERY == 0 and time.monotonic() - last >= PROGRESS_INTERVAL_S
            if progress and due:
                last = time.monotonic()
                progress(f"created {position} of {len(indices)} files")
            _create(dir_fd, index, empty)
    except OSError as exc:
        if exc.filename and not os.path.isabs(exc.filename):  # dir_fd-relative: name the whole path
            raise OSError(exc.errno, exc.strerror, str(directory / exc.filename)) from None
        raise
    finally:
        os.close(dir_fd)
    return directory
