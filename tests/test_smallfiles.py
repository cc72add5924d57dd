"""bench.smallfiles: the small files the fd-pressure steps and the open/close loops open."""

from __future__ import annotations

import os
from pathlib import Path

from bench.smallfiles import FILE_CONTENT, create_files, file_name
from bench.workspace import owned_dir


def test_create_files_creates_once_and_reuses(tmp_path: Path) -> None:
    directory = create_files(owned_dir(tmp_path, "files"), 3)
    assert sorted(os.listdir(directory)) == [file_name(i) for i in range(3)]
    (directory / file_name(0)).write_bytes(b"kept")
    create_files(owned_dir(tmp_path, "files"), 5)
    assert (directory / file_name(0)).read_bytes() == b"kept"
    assert (directory / file_name(4)).read_bytes() == FILE_CONTENT
