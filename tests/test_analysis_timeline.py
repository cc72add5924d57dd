"""bench.analysis.timeline: each cell's representative run over time, from fio's logs, in the
analysis and the HTML report; folders without logs and logs cut short."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fio_log_folder import STEPS, with_logs

from bench import analysis, report
from bench.analysis.timeline import COLUMNS, representative_runs, throughput_over_time
from bench.results import fio_logs_prefix

BASIC = Path(__file__).parent / "fixtures" / "results" / "basic"


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_logs(BASIC, tmp_path_factory.mktemp("timeline") / "basic")


def test_the_representative_run_is_the_good_one_closest_to_the_median() -> None:
    runs = pd.DataFrame({"cell": ["c"] * 4 + ["d"], "target": ["t"] * 5, "run_id": ["a", "b", "c", "d", "e"],
                         "status": ["ok", "ok", "ok", "failed", "ok"], "value": [10.0, 13.0, 30.0, 12.0, 5.0]})
    assert list(representative_runs(runs)["run_id"]) == ["b", "e"]
    assert representative_runs(runs[runs["status"] == "failed"]).empty


def test_each_representative_run_has_its_primary_metric_over_time(logged: Path) -> None:
    result = analysis.analyse(analysis.load(logged))
    timeline = result.timeline
    assert list(timeline.columns) == COLUMNS
    picked = representative_runs(result.results.runs)
    assert set(timeline["run_id"]) == set(picked["run_id"])
    native = timeline[(timeline["cell"] == "seqread-1m") & (timeline["target"] == "native")]
    assert list(native["run_id"].unique()) == ["seqread-1m--native--r1"]  # 2000 of 2000, 2020, 1980 MiB/s
    # Both jobs added up, a step per 250 ms from the earliest job's time, the ramp then the run's rate.
    assert native["t_s"].tolist() == [round(0.251 + 0.25 * step, 3) for step in range(STEPS)]
    assert native["value"].tolist()[:4] == [500.0, 1000.0, 1500.0, 2000.0] and set(native["unit"]) == {"MiB/s"}
    iops = timeline[timeline["cell"] == "randread-4k"]
    assert set(iops["unit"]) == {"IOPS"} and iops.groupby("run_id")["value"].max().min() > 8000
    assert not [f for f in result.findings if "chart over time" in f.message]


def test_a_folder_without_logs_has_an_empty_timeline_and_no_finding_about_it() -> None:
    result = analysis.analyse(analysis.load(BASIC))
    assert result.timeline.empty and list(result.timeline.columns) == COLUMNS
    assert not [f for f in result.findings if "chart over time" in f.message]


def test_a_log_cut_short_is_read_up_to_the_cut_and_said(tmp_path: Path) -> None:
    folder = with_logs(BASIC, tmp_path / "basic")
    path = fio_logs_prefix(folder, "seqread-1m--native--r1").with_name("seqread-1m--native--r1_bw.2.log")
    path.write_bytes(path.read_bytes()[:-20])  # a kill while fio wrote it
    results = analysis.load(folder)
    timeline, damaged = throughput_over_time(results, representative_runs(results.runs))
    assert damaged == ["seqread-1m--native--r1: fio's bw log seqread-1m--native--r1_bw.2.log:12: cut short"]
    native = timeline[timeline["run_id"] == "seqread-1m--native--r1"]
    assert len(native) == STEPS and native["value"].iloc[-1] == 1000.0  # the cut job's last point is gone
    result = analysis.analyse(results)
    assert [f.message for f in result.findings if "chart over time" in f.message] == [
        f"{damaged[0]}; left out of the chart over time"]
    html = report.write_report(folder, tmp_path / "r.html", "html").read_text()
    assert "cut short" in html and "seqread-1m: MiB/s (fio log)" in html


def test_the_html_plots_throughput_over_time_beside_cpu_and_fds(logged: Path, tmp_path: Path) -> None:
    html = report.write_report(logged, tmp_path / "r.html", "html").read_text()
    assert "seqread-1m: MiB/s (fio log)" in html
    assert "randread-4k: IOPS" in html and "daemon open fds" in html and "workload + daemon CPU %" in html
    without = report.write_report(BASIC, tmp_path / "plain.html", "html").read_text()
    assert "(fio log)" not in without and "daemon open fds" in without
