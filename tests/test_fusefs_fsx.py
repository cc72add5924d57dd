"""The file-system exerciser (tests/fsx.py) through every mode of the built-in server, direct
I/O and mmap each on and off: random buffered, direct and mmap I/O, truncates and fallocate
on one file, checked against a model of its bytes, then the backing file checked too."""

from __future__ import annotations

from pathlib import Path

import pytest
from fsx import Exerciser
from fusefs_helpers import (
    EVERY_MODE,
    every_mode_params,
    mount,
    needs_root,
)

pytestmark = [pytest.mark.integration, needs_root]

OPS = 2000


def test_the_exerciser_agrees_with_a_native_file(tmp_path: Path) -> None:
    exerciser = Exerciser(tmp_path / "f", seed=1)
    done = exerciser.run(OPS)
    exerciser.close()
    exerciser.verify(tmp_path / "f")
    assert set(done) == {"write", "read", "dwrite", "dread", "truncate", "fallocate", "fsync", "reopen",
                         "mapwrite", "mapread"}


# mmap on only where the mode takes a shared writable mmap (FOPEN_DIRECT_IO refuses one): never
# generated rather than skipped.
def _cases() -> list:
    cases = []
    for use_mmap in (True, False):
        for mode in every_mode_params(shared_mmap=use_mmap):
            name, marks = (mode, []) if isinstance(mode, str) else (mode.values[0], mode.marks)
            cases.append(pytest.param(name, use_mmap, marks=marks, id=f"{name}-{'mmap' if use_mmap else 'no-mmap'}"))
    return cases


@pytest.mark.parametrize("mode, use_mmap", _cases())
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_exerciser_through_the_server(tmp_path: Path, mode: str, direct: bool, use_mmap: bool) -> None:
    with mount(tmp_path, *EVERY_MODE[mode]) as fs:
        exerciser = Exerciser(fs.path / "f", seed=1, use_mmap=use_mmap, direct=direct)
        try:
            exerciser.run(OPS)
        finally:
            exerciser.close()
        exerciser.verify(fs.path / "f")
        exerciser.verify(fs.source / "f")
        assert exerciser.fallocate_modes, "the server refused every fallocate mode"
        errors = fs.stats()["errors"]  # ENOENT: lookups of the new file; ENOSYS: what is not served
        assert errors.keys() <= {"ENOENT", "ENOSYS"}, errors
