"""bench.records: the sections of a run's row, filled from what their producers return."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bench.fio_output import parse_fio_output
from bench.records import (
    RUN_COLUMNS,
    FioFigures,
    Manifest,
    PlanEntry,
    RequestTotals,
    RunInfo,
    RunRecord,
    WorkloadAsRun,
)
from bench.scenario import parse_scenario

FIO = Path(__file__).parent / "fixtures" / "fio"


def test_fio_figures_fill_only_the_directions_the_pattern_uses() -> None:
    result = parse_fio_output((FIO / "seq-read.json").read_text())
    read = FioFigures.of(result, "read")
    assert read.read_iops == pytest.approx(23145.854146) and read.read_clat_p99_us == 1728.512
    assert read.write_iops is None and read.fio_runtime_s == 1.001
    mixed = FioFigures.of(parse_fio_output((FIO / "randrw.json").read_text()), "randrw")
    assert mixed.read_iops and mixed.write_iops


def test_request_totals_split_reads_writes_and_the_rest() -> None:
    totals = RequestTotals.of({"READ": 10, "WRITE": 2, "LOOKUP": 1, "OPEN": 1}, "server", "fuse")
    assert (totals.fuse_read_requests, totals.fuse_write_requests, totals.fuse_other_requests) == (10, 2, 2)
    assert totals.passthrough_engaged is None


def test_a_run_row_has_every_column_in_order() -> None:
    cell = parse_scenario("name: s\ntargets: [{name: n, type: native}]\nworkloads: [{name: w, rw: randread}]\n").cells()[0]
    record = RunRecord(info=RunInfo(run_id="w--n--r1", status="ok"), workload=WorkloadAsRun.of(cell))
    row = record.row()
    assert tuple(row) == RUN_COLUMNS
    assert (row["bs"], row["ioengine"], row["direct"]) == ("4k", "psync", False)


def test_a_change_is_validated_like_the_original() -> None:
    info = RunInfo(run_id="x", status="ok")
    assert info.changed(status="failed", error="boom").error == "boom"
    with pytest.raises(ValidationError):
        info.changed(status="maybe")


def test_the_manifest_derives_each_cells_status() -> None:
    plan = [PlanEntry(run_id=f"c--t--r{r}", cell="c", target="t", repetition=r) for r in (1, 2)]
    manifest = Manifest(scenario="s", scenario_hash="h", seed=1, repeat=2, plan=plan, target_order=[["t"]] * 2,
                        host={}, fio_version=None, tool_version="x", workdir="/w", started_at="t0")
    assert manifest.cells() == {"c": {"t": "pending"}}
    manifest.runs["c--t--r1"] = "ok"
    assert manifest.cells() == {"c": {"t": "partial"}}
    manifest.runs["c--t--r2"] = "failed"
    assert manifest.cells() == {"c": {"t": "failed"}}
