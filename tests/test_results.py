"""The results folder writer and reader: atomic manifest, durable appends, no silent overwrite."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from bench.columns import FD_PRESSURE_COLUMNS, RUN_COLUMNS
from bench.results import (
    FD_PRESSURE,
    MANIFEST,
    RUNS,
    SAMPLES,
    Manifest,
    ResultsError,
    ResultsWriter,
    completed_run_ids,
    load_manifest,
    load_runs,
)


def _manifest(**changes) -> Manifest:
    fields = dict(
        scenario="tiny",
        scenario_hash="abc",
        seed=7,
        repeat=2,
        plan=[
            {"run_id": f"c--{t}--r{r}", "cell": "c", "target": t, "repetition": r}
            for r in (1, 2)
            for t in ("native", "fuse")
        ],
        target_order=[["native", "fuse"], ["fuse", "native"]],
        host={"kernel": "6.18"},
        fio_version="fio-3.33",
        tool_version="0.1.0",
        workdir="/var/tmp/x",
        started_at="2026-01-01T00:00:00+00:00",
    )
    fields.update(changes)
    return Manifest(**fields)


def _row(run_id: str, status: str = "ok", **values) -> dict:
    return {"run_id": run_id, "status": status, **values}


def test_new_folder_layout(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_scenario("name: tiny\n")
    writer.write_manifest(_manifest())
    assert (tmp_path / "r" / "fio").is_dir()
    assert (tmp_path / "r" / "scenario.yaml").read_text() == "name: tiny\n"
    assert writer.fio_output_path("c--native--r1") == tmp_path / "r" / "fio" / "c--native--r1.json"
    assert load_manifest(tmp_path / "r").seed == 7
    assert (tmp_path / "r" / RUNS).read_text() == ",".join(RUN_COLUMNS) + "\n"
    assert load_runs(tmp_path / "r") == []


def test_manifest_is_replaced_atomically(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_manifest(_manifest())
    first_inode = (tmp_path / "r" / MANIFEST).stat().st_ino
    manifest = _manifest(runs={"c--native--r1": "ok", "c--fuse--r1": "failed"})
    writer.write_manifest(manifest)
    # A new inode: the file was renamed over the old one, never rewritten in place.
    assert (tmp_path / "r" / MANIFEST).stat().st_ino != first_inode
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["fio", MANIFEST, RUNS]
    data = json.loads((tmp_path / "r" / MANIFEST).read_text())
    assert data["cells"] == {"c": {"native": "partial", "fuse": "failed"}}
    assert load_manifest(tmp_path / "r").runs == manifest.runs


def test_rows_are_appended_under_one_header(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.append_run(_row("c--native--r1", read_iops=1.5, passthrough_engaged=None, direct=True))
    writer.append_run(_row("c--fuse--r1", "failed", error="fio exited with status 1"))
    with open(tmp_path / "r" / RUNS, newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(RUN_COLUMNS)
    assert len(lines) == 3
    rows = load_runs(tmp_path / "r")
    assert rows[0]["read_iops"] == "1.5" and rows[0]["direct"] == "true" and rows[0]["passthrough_engaged"] == ""
    assert rows[1]["error"] == "fio exited with status 1"
    assert completed_run_ids(tmp_path / "r") == {"c--native--r1"}


def test_samples_and_fd_pressure_rows(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.append_samples([{"run_id": "a", "t_s": 0.1}, {"run_id": "a", "t_s": 0.2}], ("run_id", "t_s"))
    writer.append_fd_pressure({"target": "fuse", "open_files": 10})
    writer.append_fd_pressure([{"target": "fuse", "open_files": 100}])
    assert (tmp_path / "r" / SAMPLES).read_text() == "run_id,t_s\na,0.1\na,0.2\n"
    with open(tmp_path / "r" / FD_PRESSURE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(FD_PRESSURE_COLUMNS)
    assert [row["open_files"] for row in rows] == ["10", "100"]


def test_unknown_column_is_a_bug_not_a_silent_drop(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    with pytest.raises(ValueError, match="not_a_column"):
        writer.append_run(_row("x", not_a_column=1))


def test_appending_to_a_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    (tmp_path / "r" / RUNS).write_text("run_id,status\nold,ok\n")
    with pytest.raises(ResultsError, match="different columns"):
        writer.append_run(_row("new"))


def test_existing_folder_is_not_overwritten_without_force(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_manifest(_manifest())
    writer.append_run(_row("c--native--r1"))
    with pytest.raises(ResultsError, match="--resume.*--force"):
        ResultsWriter.create(tmp_path / "r")
    assert load_runs(tmp_path / "r")
    ResultsWriter.create(tmp_path / "r", force=True)
    assert load_runs(tmp_path / "r") == []


def test_force_only_replaces_results_folders(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    with pytest.raises(ResultsError, match="not a results folder"):
        ResultsWriter.create(precious, force=True)
    assert (precious / "thesis.tex").exists()


def test_empty_existing_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    ResultsWriter.create(tmp_path / "r")
    assert (tmp_path / "r" / "fio").is_dir()


def test_resume_drops_rows_to_redo_and_sets_aside_partial_files(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_manifest(_manifest())
    writer.append_run(_row("a"))
    writer.append_run(_row("b", "failed", error="boom"))
    writer.append_fd_pressure({"target": "fuse"})
    reopened = ResultsWriter.reopen(tmp_path / "r")
    removed = reopened.drop_runs(["b"])
    assert [row["error"] for row in removed] == ["boom"]
    assert [row["run_id"] for row in load_runs(tmp_path / "r")] == ["a"]
    aside = reopened.set_aside(FD_PRESSURE)
    assert aside is not None and aside.name == "fd_pressure.csv.incomplete"
    assert not (tmp_path / "r" / FD_PRESSURE).exists()
    assert reopened.set_aside(FD_PRESSURE) is None


def test_reading_a_folder_without_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="manifest.json is missing"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ResultsError, match="not a JSON object"):
        load_manifest(tmp_path)


def test_readme_documents_every_column_and_scenario_key() -> None:
    from bench.monitor import SAMPLE_COLUMNS
    from bench.scenario import (
        ExternalTarget,
        FdPressure,
        FuseTarget,
        PassthroughTarget,
        Scenario,
        Workload,
    )

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    names = set(RUN_COLUMNS) | set(FD_PRESSURE_COLUMNS) | set(SAMPLE_COLUMNS)
    for model in (Scenario, FuseTarget, PassthroughTarget, ExternalTarget, Workload, FdPressure):
        names |= set(model.model_fields)
    names |= {field.name for field in dataclasses.fields(Manifest)}
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert not undocumented, f"README.md does not document {undocumented}"
