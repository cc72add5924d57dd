"""bench.docs: the README's reference tables are generated from the models and are current."""

from __future__ import annotations

import pytest

from bench import docs
from bench.records import (
    RUN_COLUMNS,
    RUN_SECTIONS,
    FdPressureRecord,
    Manifest,
    RequestRecord,
    SampleRecord,
    SnapshotRecord,
)
from bench.scenario import (
    ExternalTarget,
    FdPressure,
    FuseTarget,
    PassthroughTarget,
    Scenario,
    Workload,
)


def test_readme_tables_are_current() -> None:
    assert docs.main(["--check"]) == 0, "README.md is out of date: run `python -m bench.docs`"


@pytest.mark.parametrize("model", [*RUN_SECTIONS, SampleRecord, RequestRecord, FdPressureRecord, SnapshotRecord,
                                   Manifest, Scenario, FuseTarget, PassthroughTarget, ExternalTarget, Workload,
                                   FdPressure])
def test_every_column_and_key_says_what_it_means(model) -> None:
    silent = [name for name, field in model.model_fields.items() if not field.description and name not in ("name", "type")]
    assert not silent, f"{model.__name__}: {silent} have no description"


def test_every_runs_column_is_in_the_readme_once() -> None:
    readme = docs.README.read_text()
    runs = readme[readme.index("<!-- generated: runs.csv -->"):readme.index("### samples.csv")]
    assert [line.split("`")[1] for line in runs.splitlines() if line.startswith("| `")] == list(RUN_COLUMNS)


def test_a_readme_without_a_table_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks the generated tables"):
        docs.render("# nothing here\n")
