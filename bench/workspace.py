"""The directories fusebench owns under its work directory, and what it builds in them once.

Every directory fusebench fills, empties or removes is reached through owned_dir(), which
creates each component and refuses one that is a symlink, not a directory, or outside the
root: nothing a run deletes can lead out of the work directory. What takes a while to build
(a tree, an archive, a repository, a project) is rebuilt unless the marker written beside
it, last, says it was built whole with the same settings.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError
from bench.fusefs.files import atomic_write


class WorkspaceError(BenchError):
    """A directory fusebench owns is not what it should be."""


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
