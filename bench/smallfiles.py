"""Small named files for the workloads that open files one by one: the fd-pressure steps and
the open/close loops. Created once under a directory fusebench owns, then reused."""

from __future__ import annotations

import os
from pathlib import Path

FILE_CONTENT = b"fusebench small file\n"


def file_name(index: int) -> str:
    """Name of the index-th small file."""
    return f"f{index:06d}"


def create_files(directory: Path, count: int) -> Path:
    """`count` small files in `directory` (a workspace.owned_dir; created once, existing ones reused)."""
    for index in range(count):
        try:
            fd = os.open(directory / file_name(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        try:
            os.write(fd, FILE_CONTENT)
        finally:
            os.close(fd)
    return directory
