"""Replacing a file so that a reader sees the old or the new content, never a torn one.

The server's stats file, fusebench's manifest, its leftovers registry and its data-file
markers are all written this way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text` (write a temporary file beside it, then rename it over).

    `durable` also fsyncs the file and its directory, so the new content survives a crash;
    a file rewritten several times a second (the stats file) skips that.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
