"""The data files fio works on: created once in the source directory, prefilled, reused.

Every target views the same source directory, so every target reads identical content.
Content is deterministic pseudo-random bytes (incompressible, never a zero page, so no
file system can answer reads from holes or compress them away). A marker file written
last records what was written; a later run reuses files whose marker and sizes match.

Cells that only read share one file set per (file size, file count); a cell that writes
gets its own set, so its overwrites never change what the read cells read.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import stat
from pathlib import Path

from bench.fusefs.files import atomic_write
from bench.fusefs.units import format_size
from bench.scenario import WorkloadCell, cell_key
from bench.stop import StopToken
from bench.vocabulary import METADATA_ENGINES, PATTERNS
from bench.workspace import WorkspaceError, owned_dir

DATA_DIR = "fusebench-data"
MARKER = ".fusebench-content.json"
CONTENT_VERSION = 1
CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


# fio finds the files itself from `--filename_format=f$filenum` (bench.fio): a list of
# thousands of paths would exceed fio's option length and the kernel's argument limit.
FILE_PREFIX = "f"
# How fio names the files itself: by its file counter, and where each job has files of its own,
# by its job number too. file_names() makes the same names.
SHARED_FORMAT = FILE_PREFIX + "$filenum"
SPLIT_FORMAT = FILE_PREFIX + "$jobnum.$filenum"


class DataFileError(WorkspaceError):
    """The data files cannot be created safely (symlink, foreign file, disk full)."""


def file_size(cell: WorkloadCell) -> int:
    """Bytes per data file: `size` split over `nrfiles`, rounded down to whole blocks (metadata
    engines do no I/O to the files: any size)."""
    if cell.ioengine in METADATA_ENGINES:
        return cell.size // cell.nrfiles
    return cell.size // cell.nrfiles // cell.bs * cell.bs


def files_split(cell: WorkloadCell) -> bool:
    """Whether `nrfiles` is split over the jobs (metadata engines: creating, stating or deleting
    a file twice is not the same operation) rather than every job working on all the files."""
    return cell.ioengine in METADATA_ENGINES and cell.numjobs > 1


def files_per_job(cell: WorkloadCell) -> int:
    """The files each fio job works on."""
    return cell.nrfiles // cell.numjobs if files_split(cell) else cell.nrfiles


def file_names(cell: WorkloadCell) -> list[str]:
    """The data files' names, as fio makes them from filename_format()."""
    if files_split(cell):
        return [f"{FILE_PREFIX}{job}.{i}" for job in range(cell.numjobs) for i in range(files_per_job(cell))]
    return [f"{FILE_PREFIX}{i}" for i in range(cell.nrfiles)]


def filename_format(cell: WorkloadCell) -> str:
    """fio's filename_format for the cell's files."""
    return SPLIT_FORMAT if files_split(cell) else SHARED_FORMAT


def data_dir(cell: WorkloadCell) -> Path:
    """The cell's file-set directory, relative to the source directory."""
    if not PATTERNS[cell.rw].writes:  # read-only sets are shared by the cells that name their files alike
        name = f"read-{format_size(file_size(cell))}x{cell.nrfiles}" + (f"-{cell.numjobs}jobs" if files_split(cell)
                                                                        else "")
    else:
        name = f"write-{cell_key(cell).lower()}"
    if not _SAFE_NAME.match(name):
        raise DataFileError(f"refusing data directory name {name!r}: only a-z, 0-9, '_', '.', '-' are allowed")
    return Path(DATA_DIR) / name


def bytes_to_write(cells: list[WorkloadCell], source: Path) -> int:
    """What preparing these cells' data files would add under `source`: each distinct file set's
    bytes, less what an earlier run left of it there (reused when it matches)."""
    sets = {data_dir(cell): file_size(cell) * cell.nrfiles for cell in cells}
    total = 0
    for directory, size in sets.items():
        try:
            kept = sum(entry.stat(follow_symlinks=False).st_size for entry in os.scandir(source / directory)
                       if entry.is_file(follow_symlinks=False))
        except OSError:  # not there yet
            kept = 0
        total += max(0, size - kept)
    return total


def prepare_files(cell: WorkloadCell, source: Path, stop: StopToken | None = None) -> list[Path]:
    """The cell's data files (relative to `source`) in the state every run starts from: created
    and prefilled unless already there, except for `filecreate`, whose directory is emptied.
    Called before every run (cheap when nothing changed).

    A fill abandoned through `stop` (Interrupted) is never reused: its marker is written last.
    """
    try:
        root = Path(source).resolve(strict=True)
    except OSError as exc:
        raise DataFileError(f"source directory {source}: {exc.strerror}") from None
    if not root.is_dir():
        raise DataFileError(f"source directory {source}: not a directory")
    directory = owned_dir(root, *data_dir(cell).parts)
    names = file_names(cell)
    if cell.ioengine == "filecreate":
        _empty(directory)
    else:
        expected = {"version": CONTENT_VERSION, "file_size": file_size(cell), "files": names}
        if not _reusable(directory, expected):
            _fill(directory, expected, stop)
    return [directory.relative_to(root) / name for name in names]


def _empty(directory: Path) -> None:
    """Remove every file a filecreate run made (the directory holds nothing else of ours)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                raise DataFileError(f"refusing {entry.path}: not a regular file; remove it and run again")
            os.unlink(entry.path)


def tree_digest(*directories: Path) -> str:
    """A short digest of the names and sizes under `directories` (the state a run starts from)."""
    listing = hashlib.sha256()
    for directory in directories:
        listing.update(f"{directory.name}/\n".encode())
        for parent, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(parent, name)
                listing.update(f"{os.path.relpath(path, directory)}\0{os.lstat(path).st_size}\n".encode())
    return listing.hexdigest()[:16]


def _reusable(directory: Path, expected: dict) -> bool:
    try:
        recorded = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if recorded != expected:
        return False
    for name in expected["files"]:
        try:
            info = (directory / name).lstat()
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(info.st_mode):
            raise DataFileError(f"refusing {directory / name}: not a regular file; remove it and run again")
        if info.st_size != expected["file_size"]:
            return False
    return True


def _fill(directory: Path, expected: dict, stop: StopToken | None) -> None:
    """Write every file, sync, then the marker: an interrupted fill is never reused."""
    (directory / MARKER).unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    size = expected["file_size"]
    for index, name in enumerate(expected["files"]):
        # A string seed is hashed with SHA-512: the same bytes on every run, host and Python version.
        stream = random.Random(f"fusebench-data-v{CONTENT_VERSION}:{size}:{index}")
        path = directory / name
        try:
            with open(os.open(path, flags, 0o644), "wb") as out:
                for offset in range(0, size, CHUNK):
                    if stop is not None:
                        stop.check()
                    out.write(stream.randbytes(min(CHUNK, size - offset)))
        except OSError as exc:
            raise DataFileError(f"cannot write data file {path}: {exc.strerror}") from None
    os.sync()  # once for all files: an fsync each costs seconds for 100,000 small files
    atomic_write(directory / MARKER, json.dumps(expected))
