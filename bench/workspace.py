"""The work directory a run may write to, the directories fusebench owns under it, and what
it builds in them once.

A workdir is never a system directory, and is used only when fusebench made it (its marker
is in it), or it is empty or new (then fusebench marks it). Every directory fusebench fills,
empties or removes is reached through owned_dir(), which creates each component and refuses
one that is a symlink, not a directory, or outside the root: nothing a run deletes can lead
out of the work directory. What takes a while to build
(a tree, an archive, a repository, a project) is rebuilt unless the marker written beside
it, last, says it was built whole with the same settings.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError, InputError
from bench.fusefs.files import atomic_write

DEFAULT_WORKDIR_ROOT = Path("/var/tmp/fusebench")
# The layout of a workdir: every name fusebench gives an entry of it.
SOURCE, SCRATCH = "source", "scratch"  # the files every target views; the programs' scratch space
LOCK = ".lock"  # held by the one run using the workdir
MARKER = ".fusebench-workdir"
_MOUNT_PREFIX, _SERVER_LOG_SUFFIX, _STATS_SUFFIX = "mnt-", ".server.log", ".stats.json"
_MARKER_TEXT = "A fusebench work directory: data files, mountpoints, server logs. Delete it to reclaim the space.\n"
# The system's own trees: neither they nor anything below them is a workdir.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/efi", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                "/sbin", "/snap", "/sys", "/usr", "/var/backups", "/var/cache", "/var/lib", "/var/local",
                "/var/lock", "/var/log", "/var/mail", "/var/opt", "/var/run", "/var/spool")
# Directories everyone shares: a directory below them can be a workdir, they themselves cannot.
SHARED_DIRS = ("/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp", "/var", "/var/tmp",
               str(DEFAULT_WORKDIR_ROOT))
# What fusebench wrote in a workdir before it marked them: such a workdir is adopted (marked).
_UNMARKED_DIRS = (SOURCE, SCRATCH, f"{_MOUNT_PREFIX}*")
_UNMARKED_FILES = (LOCK, f"*{_SERVER_LOG_SUFFIX}", f"*{_STATS_SUFFIX}")
_WORLD_WRITABLE = stat.S_IWGRP | stat.S_IWOTH


class WorkspaceError(BenchError):
    """A directory fusebench owns is not what it should be."""


def target_mountpoint(workdir: Path, target: str) -> Path:
    """Where the FUSE target named `target` is mounted."""
    return workdir / f"{_MOUNT_PREFIX}{target}"


def server_log(workdir: Path, target: str) -> Path:
    """Where the server of the target named `target` prints."""
    return workdir / f"{target}{_SERVER_LOG_SUFFIX}"


def stats_path(workdir: Path, target: str) -> Path:
    """Where the built-in server of the target named `target` writes its request counts."""
    return workdir / f"{target}{_STATS_SUFFIX}"


def system_dir_refusal(path: Path) -> str | None:
    """Why `path` (as written, and with its symlinks resolved) may not be a workdir, or None."""
    for candidate in dict.fromkeys((Path(os.path.abspath(path)), Path(path).resolve())):
        shared = str(candidate) in SHARED_DIRS
        tree = next((tree for tree in SYSTEM_TREES if candidate.is_relative_to(tree)), None)
        if shared or tree:
            what = (f"{candidate} is a directory the system or other programs share" if shared else
                    f"{candidate} is a system directory" if str(candidate) == tree else
                    f"{candidate} is inside the system directory {tree}")
            return (f"{what}; fusebench creates and deletes data files and mountpoints in its workdir: give a "
                    f"directory of its own, such as {DEFAULT_WORKDIR_ROOT}/NAME")
    return None


def _check_owners(path: Path) -> None:
    """Refuse `path` (resolved) when a user other than root could plant entries that root then
    follows: it and every existing ancestor must belong to root or us, and none may be writable by
    group or others (an ancestor may, with the sticky bit, as /tmp)."""
    uids = (0, os.geteuid())
    for directory in (path, *path.parents):
        try:
            info = directory.lstat()
        except FileNotFoundError:
            continue
        writable = info.st_mode & _WORLD_WRITABLE and (directory == path or not info.st_mode & stat.S_ISVTX)
        if info.st_uid in uids and not writable:
            continue
        found = f"owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"
        fix = (f"chown root {directory}" if info.st_uid not in uids else
               f"chmod go-w {directory}" if directory == path else f"chmod go-w (or +t) {directory}")
        raise InputError(f"workdir {path}: {directory} ({found}) could be changed by another user while fusebench "
                         f"runs as root; {fix}, or give another --workdir")


def _check_unmarked_entries(path: Path) -> None:
    """Refuse an unmarked `path` holding anything but the directories and files fusebench writes."""
    foreign, wrong = [], []
    for name in os.listdir(path):
        mode = (path / name).lstat().st_mode
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in _UNMARKED_DIRS):
            right_type = stat.S_ISDIR(mode)
        elif any(fnmatch.fnmatchcase(name, pattern) for pattern in _UNMARKED_FILES):
            right_type = stat.S_ISREG(mode)
        else:
            foreign.append(name)
            continue
        if not right_type:
            wrong.append(name)
    if wrong:
        raise InputError(f"workdir {path} was not made by fusebench (no {MARKER} in it) and holds "
                         f"{', '.join(sorted(wrong)[:5])}, a symlink or not what fusebench makes there (source, "
                         "scratch and mnt-* are directories, the rest plain files): remove them, or give an empty "
                         "or new directory with --workdir (or the scenario's workdir)")
    if foreign:
        raise InputError(f"workdir {path} was not made by fusebench (no {MARKER} in it) and holds "
                         f"{', '.join(sorted(foreign)[:5])}{', ...' if len(foreign) > 5 else ''}: a run creates and "
                         "deletes files there; give an empty or new directory with --workdir (or the scenario's "
                         "workdir)")


def check_workdir(path: Path) -> Path:
    """The absolute, resolved workdir `path` if a run may use it: not a system directory, only
    root or us able to change it or its ancestors, and made by fusebench, unmarked but holding
    only what fusebench writes, empty or new."""
    refusal = system_dir_refusal(path)
    if refusal:
        raise InputError(f"workdir: {refusal}")
    path = Path(path).resolve()
    _check_owners(path)
    if not path.exists():
        return path
    if not path.is_dir():
        raise InputError(f"workdir {path} is not a directory; give a directory fusebench made, or a new one")
    marker = path / MARKER
    if not (marker.is_file() and not marker.is_symlink()):
        _check_unmarked_entries(path)
    return path


def _make_dirs(path: Path) -> None:
    """Create `path` and its missing ancestors, each with mode 0755 whatever the umask."""
    missing = [directory for directory in (path, *path.parents) if not directory.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)


def claim_workdir(path: Path) -> str | None:
    """Create and mark the workdir `path` (checked by check_workdir); a note when an unmarked
    one of an earlier fusebench was adopted."""
    path = check_workdir(path)
    adopted = path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file()
    try:
        _make_dirs(path)
        if not (path / MARKER).is_file():
            (path / MARKER).write_text(_MARKER_TEXT)
    except OSError as exc:
        raise InputError(f"cannot create the workdir {path}: {exc.strerror}; give another with --workdir") from None
    return f"workdir {path}: made by an earlier fusebench, now marked as its own ({MARKER})" if adopted else None


def owned_dir(root: Path, *parts: str | os.PathLike) -> Path:
    """`root`/`parts`, every component below `root` created if needed and checked."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"cannot create {root}: {exc.strerror}") from None
    real_root = root.resolve()
    path = root
    for part in parts:
        path = path / part
        try:
            path.mkdir(mode=0o755, exist_ok=True)
            info = path.lstat()
        except OSError as exc:
            raise WorkspaceError(f"cannot create {path}: {exc.strerror}") from None
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise WorkspaceError(f"refusing {path}: it is a symlink or not a directory; remove it and run again")
        if not path.resolve().is_relative_to(real_root):
            raise WorkspaceError(f"refusing {path}: it resolves outside {root}")
    return path


def empty_dir(path: Path) -> None:
    """Remove everything inside the directory `path` (an owned_dir); symlinks are removed, never followed."""
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def build_unless_whole(target: Path, expected: dict, build: Callable[[], None]) -> None:
    """Build `target` (a file or a directory) unless the marker beside it says it was built
    whole with `expected`; whatever was there is removed first, and the marker written last."""
    marker = target.with_suffix(".json")
    try:
        if json.loads(marker.read_text()) == expected:
            return
    except (OSError, ValueError):
        pass
    marker.unlink(missing_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    build()
    os.sync()  # what was built is on disk before its marker
    atomic_write(marker, json.dumps(expected))
