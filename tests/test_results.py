"""The results folder: one writer (atomic manifest, durable appends, no silent overwrite) and
one reader (typed frames, the manifest, fio results), for this format and the previous one."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from bench.records import (
    FORMAT_VERSION,
    RUN_COLUMNS,
    FdPressureRecord,
    Manifest,
    PlanEntry,
    RequestRecord,
    RunInfo,
    RunRecord,
    SampleRecord,
    SnapshotRecord,
)
from bench.results import (
    FD_PRESSURE,
    FD_SNAPSHOTS,
    MANIFEST,
    RUNS,
    SAMPLES,
    ResultsError,
    ResultsFolder,
    ResultsWriter,
)

V1 = Path(__file__).parent / "fixtures" / "results" / "v1-format"


def _manifest(**changes) -> Manifest:
    fields = dict(
        scenario="tiny",
        scenario_hash="abc",
        seed=7,
        repeat=2,
        plan=[PlanEntry(run_id=f"c--{t}--r{r}", cell="c", target=t, repetition=r) for r in (1, 2) for t in ("native", "fuse")],
        target_order=[["native", "fuse"], ["fuse", "native"]],
        host={"kernel": "6.18"},
        fio_version="fio-3.33",
        tool_version="0.1.0",
        workdir="/var/tmp/x",
        started_at="2026-01-01T00:00:00+00:00",
    )
    fields.update(changes)
    return Manifest(**fields)


def _run(run_id: str, status: str = "ok", **info) -> RunRecord:
    return RunRecord(info=RunInfo(run_id=run_id, status=status, **info))


def test_new_folder_layout(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_scenario("name: tiny\n")
    writer.write_manifest(_manifest())
    assert (tmp_path / "r" / "fio").is_dir()
    assert (tmp_path / "r" / "scenario.yaml").read_text() == "name: tiny\n"
    assert writer.fio_output_path("c--native--r1") == tmp_path / "r" / "fio" / "c--native--r1.json"
    folder = ResultsFolder(tmp_path / "r")
    assert folder.manifest().seed == 7 and folder.scenario_text() == "name: tiny\n"
    assert (tmp_path / "r" / RUNS).read_text() == ",".join(RUN_COLUMNS) + "\n"
    assert folder.runs().empty and list(folder.runs().columns) == list(RUN_COLUMNS)
    assert folder.samples() is None and folder.requests() is None and folder.fd_pressure() is None


def test_fio_logs_go_under_a_prefix_of_the_tools_choosing_and_are_read_back(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    assert writer.logs_prefix("c--native--r1", "opens") is None and writer.logs_prefix("c--n--r1", "program") is None
    prefix = writer.logs_prefix("c--native--r1", "fio")
    assert prefix == tmp_path / "r" / "fio_logs" / "c--native--r1" and prefix.parent.is_dir()
    prefix.with_name("c--native--r1_iops.1.log").write_text("500, 10, 0, 0, 0, 0\n1000, 30, 0, 0, 0, 0\n")
    folder = ResultsFolder(tmp_path / "r")
    assert folder.fio_log("c--native--r1", "iops").value == [10.0, 30.0]
    assert folder.fio_log("c--native--r1", "bw") is None and folder.fio_log("c--native--r2", "iops") is None


def test_runs_csv_columns_extend_those_of_format_1_at_the_end() -> None:
    with open(V1 / RUNS, newline="") as handle:
        first = next(csv.reader(handle))
    assert list(RUN_COLUMNS[: len(first)]) == first and len(RUN_COLUMNS) > len(first)
    with open(V1 / SAMPLES, newline="") as handle:
        assert next(csv.reader(handle)) == list(SampleRecord.columns())
    with open(V1 / FD_PRESSURE, newline="") as handle:
        first = next(csv.reader(handle))
    assert list(FdPressureRecord.columns()[: len(first)]) == first  # format 7 added columns at the end


def test_manifest_is_replaced_atomically_with_the_derived_cell_status(tmp_path: Path) -> None:
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
    assert data["format_version"] == FORMAT_VERSION
    assert ResultsFolder(tmp_path / "r").manifest().runs == manifest.runs


def test_a_run_is_appended_with_its_samples_and_requests_and_read_back_typed(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    samples = [SampleRecord(run_id="c--fuse--r1", t_s=0.1, role="daemon", num_fds=5),
               SampleRecord(run_id="c--fuse--r1", t_s=0.2, role="system", file_nr=900)]
    requests = [RequestRecord(run_id="c--fuse--r1", source="server", opcode=op, requests=n)
                for op, n in (("LOOKUP", 2), ("READ", 1000))]
    writer.append_run(_run("c--fuse--r1", repetition=1, target="fuse"), samples, requests)
    writer.append_run(_run("c--native--r1", "failed", error="fio exited with status 1"))
    with open(tmp_path / "r" / RUNS, newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(RUN_COLUMNS) and len(lines) == 3
    folder = ResultsFolder(tmp_path / "r")
    runs = folder.runs()
    assert list(runs["run_id"]) == ["c--fuse--r1", "c--native--r1"]
    assert str(runs["repetition"].dtype) == "Int64" and str(runs["direct"].dtype) == "boolean"
    assert runs["error"].iloc[1] == "fio exited with status 1" and runs["error"].isna().iloc[0]
    assert folder.completed_run_ids() == {"c--fuse--r1"}
    assert list(folder.samples()["num_fds"].astype("Int64")[:1]) == [5]
    assert dict(zip(folder.requests()["opcode"], folder.requests()["requests"])) == {"LOOKUP": 2, "READ": 1000}


def test_a_column_outside_the_records_is_a_bug_not_a_silent_drop() -> None:
    with pytest.raises(ValidationError, match="not_a_column"):
        RunInfo(run_id="x", not_a_column=1)


def test_appending_to_a_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    (tmp_path / "r" / RUNS).write_text("run_id,status\nold,ok\n")
    with pytest.raises(ResultsError, match="different columns"):
        writer.append_run(_run("new"))


def test_existing_folder_is_not_overwritten_without_force(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_manifest(_manifest())
    writer.append_run(_run("c--native--r1"))
    with pytest.raises(ResultsError, match="--resume.*--force"):
        ResultsWriter.create(tmp_path / "r")
    assert not ResultsFolder(tmp_path / "r").runs().empty
    ResultsWriter.create(tmp_path / "r", force=True)
    assert ResultsFolder(tmp_path / "r").runs().empty


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


def test_resume_drops_every_row_of_the_runs_to_redo_and_sets_aside_partial_files(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_manifest(_manifest())
    writer.append_run(_run("a"), [SampleRecord(run_id="a", t_s=0.1, role="system")],
                      [RequestRecord(run_id="a", source="server", opcode="READ", requests=1)])
    writer.append_run(_run("b", "failed", error="boom"))
    # A run killed after its samples and requests were written but before its runs.csv row:
    writer._append(SAMPLES, SampleRecord.columns(), [SampleRecord(run_id="c", t_s=0.1, role="fio").row()])
    writer.append_fd_pressure(FdPressureRecord(target="fuse", open_files=10, status="ok"),
                              [SnapshotRecord(target="fuse", open_files=10, phase="held", file_nr=7)])
    reopened = ResultsWriter.reopen(tmp_path / "r")
    assert reopened.drop_runs(["b", "c"]) == 1
    folder = ResultsFolder(tmp_path / "r")
    assert list(folder.runs()["run_id"]) == ["a"] and list(folder.samples()["run_id"]) == ["a"]
    assert list(folder.requests()["run_id"]) == ["a"]
    aside = reopened.set_aside(FD_PRESSURE, FD_SNAPSHOTS)
    assert [path.name for path in aside] == ["fd_pressure.csv.incomplete", "fd_pressure_snapshots.csv.incomplete"]
    assert folder.fd_pressure() is None and reopened.set_aside(FD_PRESSURE) == []


def test_reading_a_folder_without_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="not a results folder"):
        ResultsFolder(tmp_path)
    (tmp_path / RUNS).write_text(",".join(RUN_COLUMNS) + "\n")
    assert ResultsFolder(tmp_path).manifest() is None
    with pytest.raises(ResultsError, match="manifest.json is missing"):
        ResultsFolder(tmp_path).manifest(required=True)
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ResultsError, match="not a JSON object"):
        ResultsFolder(tmp_path).manifest()
    (tmp_path / MANIFEST).write_text('{"scenario": "x"}')
    with pytest.raises(ResultsError, match="incomplete or damaged: scenario_hash"):
        ResultsFolder(tmp_path).manifest()


def test_a_format_1_folder_reads_through_the_same_reader() -> None:
    folder = ResultsFolder(V1)
    manifest = folder.manifest()
    assert manifest.format_version == 1 and manifest.status == "complete" and len(manifest.plan) == 12
    runs = folder.runs()
    assert len(runs) == 12 and set(runs["status"]) == {"ok"}
    assert runs.loc[runs["target"] == "passthrough", "passthrough_engaged"].all()
    assert folder.requests() is None and folder.fd_snapshots() is None
    assert len(folder.fd_pressure()) == 4
    result = folder.fio_result(runs["run_id"].iloc[0])
    assert result.read.total_ios + result.write.total_ios > 0
    assert folder.fio_result("no-such-run") is None



def test_a_row_cut_short_by_a_kill_is_left_out_and_dropped_on_resume(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.write_manifest(_manifest())
    writer.append_run(_run("a", repetition=1))
    writer.append_run(_run("b", repetition=1))
    runs = tmp_path / "r" / RUNS
    runs.write_text(runs.read_text()[:-40])  # the machine died inside b's row: no newline, fields missing
    folder = ResultsFolder(tmp_path / "r")
    assert list(folder.runs()["run_id"]) == ["a"] and folder.damaged == {RUNS: [3]}
    assert folder.completed_run_ids() == {"a"}
    reopened = ResultsWriter.reopen(tmp_path / "r")
    assert reopened.drop_runs(["b"]) == 1
    reopened.append_run(_run("b", repetition=1))
    again = ResultsFolder(tmp_path / "r")
    assert list(again.runs()["run_id"]) == ["a", "b"] and again.damaged == {}


def test_a_value_of_the_wrong_type_names_the_file_and_line(tmp_path: Path) -> None:
    writer = ResultsWriter.create(tmp_path / "r")
    writer.append_run(_run("a", repetition=1))
    runs = tmp_path / "r" / RUNS
    runs.write_text(runs.read_text().replace("a,,,,,,1,", "a,,,,,,one,"))
    with pytest.raises(ResultsError, match=r"runs.csv:2: repetition 'one' is not a int64 value"):
        ResultsFolder(tmp_path / "r").runs()


def test_resuming_a_folder_written_before_columns_were_added_widens_its_rows(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    shutil.copytree(V1, folder)
    before = ResultsFolder(folder).runs()
    writer = ResultsWriter.reopen(folder)
    writer.append_run(_run("late", repetition=9))
    with open(folder / RUNS, newline="") as handle:
        assert next(csv.reader(handle)) == list(RUN_COLUMNS)
    after = ResultsFolder(folder).runs()
    assert len(after) == len(before) + 1 and not ResultsFolder(folder).damaged
    assert after["run_id"].iloc[:-1].tolist() == before["run_id"].tolist()
    assert after["family"].iloc[:-1].isna().all()


TAMPERED_MANIFESTS = {
    "deep": (lambda path: path.write_text("[" * 100_000), "cannot read the manifest \\(.*recursion"),
    "huge-int": (lambda path: path.write_text('{"a": 1' + "0" * 5000), "cannot read the manifest \\(Exceeds the limit"),
    "not-utf8": (lambda path: path.write_bytes(b'{"a": "\xff"}'), "cannot read the manifest \\('utf-8' codec"),
    "fifo": (os.mkfifo, "not a manifest file: it is a FIFO"),
}


@pytest.mark.parametrize("kind", TAMPERED_MANIFESTS)
def test_a_tampered_manifest_is_a_results_error(tmp_path: Path, kind: str) -> None:
    (tmp_path / RUNS).write_text(",".join(RUN_COLUMNS) + "\n")
    make, problem = TAMPERED_MANIFESTS[kind]
    make(tmp_path / MANIFEST)
    with pytest.raises(ResultsError, match=f"^{tmp_path / MANIFEST}(:1)?: {problem}"):
        ResultsFolder(tmp_path).manifest()
