"""The file-system exerciser (tests/fsx.py) through every mode of the built-in server: random
buffered, direct and mmap I/O, truncates and fallocate on one file, checked against a model
of its bytes, then the backing file checked too."""

from __future__ import annotations

from pathlib import Path

import pytest
from fsx import Exerciser
from fusefs_helpers import MODES, mode_params, mount, needs_root

pytestmark = [pytest.mark.integration, needs_root]

OPS = 2000
VARIANTS = {  # plain mode's other settings: extra server arguments, whether shared mmap works
    "plain-writeback": (["--writeback-cache"], True),
    "plain-direct-io": (["--direct-io"], False),  # FOPEN_DIRECT_IO refuses shared writable mmap
    "plain-keep-cache": (["--keep-cache"], True),
}


def test_the_exerciser_agrees_with_a_native_file(tmp_path: Path) -> None:
    exerciser = Exerciser(tmp_path / "f", seed=1)
    done = exerciser.run(OPS)
    exerciser.close()
    exerciser.verify(tmp_path / "f")
    assert set(done) == {"write", "read", "dwrite", "dread", "truncate", "fallocate", "fsync", "reopen",
                         "mapwrite", "mapread"}


@pytest.mark.parametrize("mode", mode_params() + list(VARIANTS))
@pytest.mark.parametrize("seed", [1, 2])
def test_exerciser_through_the_server(tmp_path: Path, mode: str, seed: int) -> None:
    args, use_mmap = (MODES[mode], True) if mode in MODES else (["--mode", "plain", *VARIANTS[mode][0]],
                                                                  VARIANTS[mode][1])
    with mount(tmp_path, *args) as fs:
        exerciser = Exerciser(fs.path / "f", seed=seed, use_mmap=use_mmap)
        try:
            exerciser.run(OPS)
        finally:
            exerciser.close()
        exerciser.verify(fs.path / "f")
        exerciser.verify(fs.source / "f")
        assert exerciser.fallocate_modes, "the server refused every fallocate mode"
        errors = fs.stats()["errors"]  # ENOENT: lookups of the new file; ENOSYS: what is not served
        assert errors.keys() <= {"ENOENT", "ENOSYS"}, errors
