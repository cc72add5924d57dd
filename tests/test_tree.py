"""bench.tree: the seeded tree the program workloads run on."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest

from bench.tree import TreeSpec


def test_the_same_seed_gives_the_same_tree_and_another_seed_another() -> None:
    spec = TreeSpec(files=200, dirs=20, seed=7)
    assert spec.layout() == TreeSpec(files=200, dirs=20, seed=7).layout()
    assert spec.layout() != TreeSpec(files=200, dirs=20, seed=8).layout()
    assert spec.digest() != TreeSpec(files=200, dirs=20, seed=8).digest()


def test_the_default_shape_is_a_source_tree() -> None:
    dirs, entries = TreeSpec().layout()
    sizes = [entry.size for entry in entries]
    assert len(entries) == 5000 and len(dirs) == 300
    assert 2048 <= statistics.median(sizes) <= 8192
    assert min(sizes) >= 1 and max(sizes) <= 4 << 20 and max(sizes) > 256 << 10  # bytes to MiB
    depth = max(d.count("/") for d in dirs)
    assert depth >= 3  # nested, not flat
    assert len({entry.path.rsplit("/", 1)[0] for entry in entries if "/" in entry.path}) > 200


def test_generate_writes_the_layout_once_and_reuses_it(tmp_path: Path) -> None:
    spec = TreeSpec(files=50, dirs=5, median_size="1k", max_size="64k")
    root = spec.generate(tmp_path)
    assert root == spec.path_in(tmp_path)
    _, entries = spec.layout()
    assert {entry.path: entry.size for entry in entries} == {
        os.path.relpath(os.path.join(parent, name), root): os.path.getsize(os.path.join(parent, name))
        for parent, _, names in os.walk(root) for name in names
    }
    assert spec.totals() == (50, sum(entry.size for entry in entries))
    first = root / entries[0].path
    stamp = first.stat().st_mtime_ns
    assert spec.generate(tmp_path) == root and first.stat().st_mtime_ns == stamp  # reused, not rewritten
    marker = root.with_suffix(".json")
    assert marker.is_file() and marker.parent == root.parent  # beside the tree: programs see only the tree


def test_a_tree_whose_marker_is_gone_is_generated_again(tmp_path: Path) -> None:
    spec = TreeSpec(files=10, dirs=2)
    root = spec.generate(tmp_path)
    (root / "stray").write_text("left by someone")
    root.with_suffix(".json").unlink()
    spec.generate(tmp_path)
    assert not (root / "stray").exists() and spec.totals()[0] == sum(len(n) for _, _, n in os.walk(root))


def test_a_median_above_the_largest_size_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="median_size is larger than max_size"):
        TreeSpec(median_size="1M", max_size="64k")
