"""bench.smallfiles: the small files the fd-pressure steps and the open/close loops open."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bench import smallfiles
from bench.smallfiles import FILE_CONTENT, create_files, file_name
from bench.workspace import owned_dir


def test_create_files_creates_once_and_reuses(tmp_path: Path) -> None:
    directory = create_files(owned_dir(tmp_path, "files"), 3)
    assert sorted(os.listdir(directory)) == [file_name(i) for i in range(3)]
    (directory / file_name(0)).write_bytes(b"kept")
    create_files(owned_dir(tmp_path, "files"), 5)
    assert (directory / file_name(0)).read_bytes() == b"kept"
    assert (directory / file_name(4)).read_bytes() == FILE_CONTENT


def test_names_keep_their_format_past_a_million() -> None:
    assert [file_name(i) for i in (0, 999_999, 1_000_000)] == ["f000000", "f999999", "f1000000"]


def test_only_the_missing_names_are_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in (1, 3):
        (tmp_path / file_name(index)).write_bytes(b"mine")
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *args, **kwargs: opened.append(path) or real_open(path, *args, **kwargs))
    create_files(tmp_path, 5)
    assert opened == [tmp_path, file_name(0), file_name(2), file_name(4)]  # the directory, then the missing
    assert (tmp_path / file_name(3)).read_bytes() == b"mine"
    assert smallfiles.missing_indices(tmp_path, 6) == [5]


def test_a_tree_keeps_what_exists_and_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smallfiles, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(smallfiles, "_CHECK_EVERY", 64)
    (tmp_path / file_name(7)).write_bytes(b"mine")
    lines: list[str] = []
    create_files(tmp_path, 5000, progress=lines.append)
    assert sorted(os.listdir(tmp_path)) == [file_name(i) for i in range(5000)]
    assert {(tmp_path / name).read_bytes() for name in os.listdir(tmp_path) if name != file_name(7)} == {FILE_CONTENT}
    assert (tmp_path / file_name(7)).read_bytes() == b"mine"
    assert lines and all(line.startswith("created ") and line.endswith(" of 4999 files") for line in lines)


def test_progress_in_process_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smallfiles, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(smallfiles, "_CHECK_EVERY", 100)
    lines: list[str] = []
    create_files(tmp_path, 350, progress=lines.append)
    assert lines == ["created 100 of 350 files", "created 200 of 350 files", "created 300 of 350 files"]


def test_a_real_tree_of_25000_files(tmp_path: Path) -> None:
    count = 25_000
    create_files(tmp_path, count)
    assert smallfiles.missing_indices(tmp_path, count) == []
    assert len(os.listdir(tmp_path)) == count
    assert (tmp_path / file_name(count - 1)).read_bytes() == FILE_CONTENT


def test_a_failure_raises_its_oserror_with_the_whole_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_create = smallfiles._create

    def full(dir_fd: int, index: int, empty: bool) -> None:
        if index == 1500:  # the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file_name(index))
        real_create(dir_fd, index, empty)

    monkeypatch.setattr(smallfiles, "_create", full)
    with pytest.raises(OSError) as raised:
        create_files(tmp_path, 3000)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(tmp_path / file_name(1500))
    assert smallfiles.missing_indices(tmp_path, 3000)[0] == 1500  # the files made so far stay


def test_a_directory_removed_under_it_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "files"
    directory.mkdir()
    real_missing = smallfiles.missing_indices

    def removed_after_listing(*args) -> list[int]:
        missing = real_missing(*args)
        directory.rmdir()  # creating in a deleted directory: ENOENT
        return missing

    monkeypatch.setattr(smallfiles, "missing_indices", removed_after_listing)
    with pytest.raises(FileNotFoundError):
        create_files(directory, 3000)


def test_empty_files_are_made_with_one_mknod_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / file_name(7)).write_bytes(b"kept")
    create_files(tmp_path, 3000, empty=True)
    assert len(os.listdir(tmp_path)) == 3000
    assert (tmp_path / file_name(7)).read_bytes() == b"kept"
    assert all((tmp_path / file_name(index)).stat().st_size == 0 for index in (0, 1500, 2999))
    assert stat.S_ISREG((tmp_path / file_name(2999)).stat().st_mode)
