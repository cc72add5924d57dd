"""bench.datafiles: prefilled, deterministic, reusable data files that stay inside the source."""

import os
import zlib
from pathlib import Path

import pytest

from bench.datafiles import (
    DATA_DIR,
    DataFileError,
    bytes_to_write,
    data_dir,
    file_size,
    prepare_files,
)
from bench.scenario import parse_scenario
from bench.workspace import WorkspaceError


def cells(**fields):
    """The cells of a workload named w with `fields` (YAML values; rw defaults to read)."""
    fields = {"rw": "read", "size": "256k", **fields}
    body = ", ".join(f"{key}: {value}" for key, value in fields.items())
    return parse_scenario(f"name: t\ntargets: [{{name: n, type: native}}]\nworkloads:\n  - {{name: w, {body}}}\n").cells()


def cell(**fields):
    (only,) = cells(**fields)
    return only


def test_files_are_created_inside_source_with_split_size(tmp_path):
    c = cell(size="96k", nrfiles=3, bs="4k")
    files = prepare_files(c, tmp_path)
    assert len(files) == 3 and len(set(files)) == 3
    for rel in files:
        assert not rel.is_absolute() and rel.parts[0] == DATA_DIR
        path = tmp_path / rel
        assert path.resolve().is_relative_to(tmp_path.resolve())
        assert path.is_file() and not path.is_symlink()
        assert path.stat().st_size == 32 * 1024


def test_file_size_rounds_down_to_whole_blocks():
    assert file_size(cell(size="1M", nrfiles=3, bs="4k")) == 85 * 4096  # 1M / 3 = 349525.3 bytes
    assert file_size(cell(size="1M", nrfiles=1, bs="4k")) == 1 << 20


def test_content_is_deterministic_incompressible_and_never_a_zero_block(tmp_path):
    c = cell(size="2M", nrfiles=2, bs="4k")
    first = [(tmp_path / "a" / rel) for rel in prepare_files(c, _mkdir(tmp_path / "a"))]
    second = [(tmp_path / "b" / rel) for rel in prepare_files(c, _mkdir(tmp_path / "b"))]
    data = [path.read_bytes() for path in first]
    assert data == [path.read_bytes() for path in second]  # same bytes in any source dir, any run
    assert data[0] != data[1]  # files differ, so nothing can deduplicate them
    for blob in data:
        assert len(zlib.compress(blob, 1)) > 0.99 * len(blob)
        blocks = {blob[i:i + 4096] for i in range(0, len(blob), 4096)}
        assert len(blocks) == len(blob) // 4096 and bytes(4096) not in blocks


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_existing_files_are_reused_not_rewritten(tmp_path):
    c = cell(size="1M", nrfiles=2)
    files = prepare_files(c, tmp_path)
    before = [(tmp_path / rel).stat() for rel in files]
    assert prepare_files(c, tmp_path) == files
    after = [(tmp_path / rel).stat() for rel in files]
    assert [(s.st_ino, s.st_mtime_ns) for s in before] == [(s.st_ino, s.st_mtime_ns) for s in after]


def test_wrong_size_or_missing_marker_means_refill(tmp_path):
    c = cell(size="1M", nrfiles=2)
    files = prepare_files(c, tmp_path)
    good = (tmp_path / files[0]).read_bytes()
    os.truncate(tmp_path / files[0], 4096)
    prepare_files(c, tmp_path)
    assert (tmp_path / files[0]).read_bytes() == good

    (tmp_path / files[1]).write_bytes(bytes(1 << 19))  # right size, wrong content: only the marker can tell
    next((tmp_path / files[1]).parent.glob(".fusebench-content.json")).unlink()
    prepare_files(c, tmp_path)
    assert (tmp_path / files[1]).read_bytes() != bytes(1 << 19)


def test_read_cells_share_files_writing_cells_get_their_own(tmp_path):
    seq, rand = cell(rw="read", bs="1M", size="2M"), cell(rw="randread", bs="4k", size="2M")
    write, mixed = cells(rw="[write, randrw]", size="2M")
    assert data_dir(seq) == data_dir(rand) == Path(DATA_DIR, "read-2mx1")
    assert data_dir(write) == Path(DATA_DIR, "write-w_rw-write")
    assert data_dir(mixed) == Path(DATA_DIR, "write-w_rw-randrw")


def test_symlinked_data_dir_is_refused(tmp_path):
    source, elsewhere = _mkdir(tmp_path / "src"), _mkdir(tmp_path / "elsewhere")
    (source / DATA_DIR).symlink_to(elsewhere)
    with pytest.raises(WorkspaceError, match="symlink"):
        prepare_files(cell(), source)
    assert not any(elsewhere.iterdir())


def test_symlinked_cell_dir_is_refused(tmp_path):
    source, elsewhere = _mkdir(tmp_path / "src"), _mkdir(tmp_path / "elsewhere")
    (source / DATA_DIR).mkdir()
    (source / data_dir(cell())).symlink_to(elsewhere)
    with pytest.raises(WorkspaceError, match="symlink"):
        prepare_files(cell(), source)
    assert not any(elsewhere.iterdir())


def test_symlinked_data_file_is_never_followed(tmp_path):
    c = cell(size="64k")
    files = prepare_files(c, tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / files[0]).unlink()
    (tmp_path / files[0]).symlink_to(victim)
    with pytest.raises(DataFileError, match="not a regular file"):
        prepare_files(c, tmp_path)  # marker present: the reuse check sees the symlink
    next((tmp_path / files[0]).parent.glob(".fusebench-content.json")).unlink()
    with pytest.raises(DataFileError, match="cannot write"):
        prepare_files(c, tmp_path)  # no marker: the refill opens with O_NOFOLLOW
    assert victim.read_text() == "keep me"


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(DataFileError, match="nope"):
        prepare_files(cell(), tmp_path / "nope")


def test_bytes_to_write_counts_each_file_set_once_less_what_is_there(tmp_path: Path) -> None:
    readers = cells(rw="read", bs="4k", size="1M", iodepth="[1, 4]", ioengine="libaio")  # one shared read set
    writer = cell(rw="write", bs="4k", size="2M")                   # a set of its own
    assert bytes_to_write([*readers, writer], tmp_path) == (1 << 20) + (2 << 20)
    prepare_files(readers[0], tmp_path)
    assert bytes_to_write([*readers, writer], tmp_path) == 2 << 20  # the read set is there, reused
