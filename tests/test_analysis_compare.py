"""bench.analysis.compare: several folders against a base one, on every compared metric."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import analysis
from bench.analysis.compare import (
    COMPARED_METRICS,
    PRIMARY,
    compare_folders,
    folder_names,
    run_metrics,
)
from bench.analysis.statistics import EQUIVALENT, FASTER, SLOWER, UNDECIDED
from bench.host import Host
from bench.runner import RunOptions, run

FIXTURES = Path(__file__).parent / "fixtures" / "results"


def _analysed(path: Path) -> analysis.Analysis:
    return analysis.analyse(analysis.load(path))


@pytest.fixture(scope="module")
def three():
    return compare_folders(_analysed(FIXTURES / "basic"),
                           [_analysed(FIXTURES / "basic-b"), _analysed(FIXTURES / "basic-c")])


def _change(comparison, folder: str, cell: str, target: str, metric: str = PRIMARY) -> pd.Series:
    changes = comparison.changes
    picked = changes[(changes["folder"] == folder) & (changes["cell"] == cell) & (changes["target"] == target)
                     & (changes["metric"] == metric)]
    assert len(picked) == 1, picked
    return picked.iloc[0]


def test_every_other_folder_is_judged_against_the_base(three) -> None:
    assert three.names == ["basic", "basic-b", "basic-c"]
    better = _change(three, "basic-b", "seqread-1m", "passthrough")
    assert better["ratio"] == pytest.approx(1.1) and better["verdict"] == FASTER
    assert _change(three, "basic-b", "seqread-1m", "fuse")["verdict"] == SLOWER
    plain_c = _change(three, "basic-c", "seqread-1m", "fuse")
    assert plain_c["ratio"] == pytest.approx(1.2) and plain_c["verdict"] == FASTER
    # +5% with an interval of about +-2.4%: neither beyond nor within 5% of the base
    assert _change(three, "basic-c", "seqread-1m", "passthrough")["verdict"] == UNDECIDED
    assert _change(three, "basic-c", "randread-4k", "passthrough")["verdict"] == EQUIVALENT


def test_pairs_some_folders_lack_are_listed_with_where_they_are(three) -> None:
    only = {(row.cell, row.target): (row.present_in, row.missing_in) for row in three.only.itertuples()}
    assert only[("randwrite-4k", "native")] == (["basic"], ["basic-b", "basic-c"])
    assert only[("seqread-4m", "passthrough")] == (["basic-b"], ["basic", "basic-c"])
    assert only[("seqwrite-1m", "fuse")] == (["basic", "basic-b"], ["basic-c"])
    # randwrite-4k passthrough was planned in basic but never ran anywhere: no pair to list
    assert ("randwrite-4k", "passthrough") not in only
    assert not three.changes[(three.changes["folder"] == "basic-c") & (three.changes["cell"] == "seqwrite-1m")].size


def test_summary_counts_the_verdicts_and_takes_the_geometric_mean(three) -> None:
    summary = three.summary.set_index(["folder", "metric"])
    row = summary.loc[("basic-c", PRIMARY)]
    changes = three.changes[(three.changes["folder"] == "basic-c") & (three.changes["metric"] == PRIMARY)]
    assert row["pairs"] == len(changes) == 6
    assert row["geomean"] == pytest.approx(float(changes["ratio"].prod() ** (1 / 6)))
    assert (row[FASTER], row[SLOWER], row[EQUIVALENT], row[UNDECIDED]) == (1, 0, 3, 2)


def test_environment_differences_are_listed_per_folder(three) -> None:
    assert three.differences["basic-b"] == []
    assert any(line.startswith("kernel: 6.18.0-fixture") and "6.19.0-fixture" in line
               for line in three.differences["basic-c"])


def test_latency_cpu_and_requests_are_speeds_too(tmp_path: Path) -> None:
    """Doubling every latency and the daemon's CPU halves their 'speed': a change below 1, worse."""
    slower = tmp_path / "slower"
    shutil.copytree(FIXTURES / "basic-b", slower)
    base = tmp_path / "base"
    shutil.copytree(FIXTURES / "basic-b", base)
    with_p999 = pd.read_csv(base / "runs.csv")
    for direction in ("read", "write"):  # the fixtures lack p99.9: 1.5 x p99, here and doubled below
        with_p999[f"{direction}_clat_p999_us"] = with_p999[f"{direction}_clat_p99_us"] * 1.5
    with_p999.to_csv(base / "runs.csv", index=False)
    runs = with_p999.copy()
    for column in [c for c in runs if c.endswith(("clat_p50_us", "clat_p99_us", "clat_p999_us"))]:
        runs[column] *= 2
    for column in ("fio_cpu_user_s", "fio_cpu_sys_s", "daemon_cpu_user_s", "daemon_cpu_sys_s"):
        runs[column] *= 2
    runs.to_csv(slower / "runs.csv", index=False)
    comparison = compare_folders(_analysed(base), [_analysed(slower)])
    for metric in ("clat_p50_us", "clat_p99_us", "clat_p999_us", "cpu_s_per_gib", "cpu_s_per_kop"):
        change = _change(comparison, "slower", "seqread-1m", "fuse", metric)
        assert change["ratio"] == pytest.approx(0.5) and change["verdict"] == SLOWER, metric
        assert change["median"] == pytest.approx(2 * change["median_base"])
    assert _change(comparison, "slower", "seqread-1m", "fuse")["ratio"] == pytest.approx(1.0)


def test_run_metrics_gives_every_compared_metric_a_column() -> None:
    frame = run_metrics(analysis.load(FIXTURES / "basic").runs)
    assert set(COMPARED_METRICS) <= set(frame.columns)
    native = frame[frame["target"] == "native"]
    assert native["requests_per_gib"].isna().all()  # native has no FUSE requests to count
    fuse = frame[(frame["target"] == "fuse") & (frame["cell"] == "seqread-1m")]
    assert (fuse["requests_per_gib"] > 0).all() and (fuse["cpu_s_per_gib"] > 0).all()


def test_folder_names_stay_distinct(tmp_path: Path) -> None:
    assert folder_names([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == ["a/run", "b/run"]
    assert folder_names([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]
    assert folder_names([tmp_path / "x", tmp_path / "x"]) == ["x#1", "x#2"]


def _variant(tmp_path: Path, name: str, source: str = "basic-b", edit=None) -> Path:
    """A copy of a fixture folder named `name`, its runs.csv changed by `edit`."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / source, folder)
    if edit is not None:
        runs = pd.read_csv(folder / "runs.csv")
        edit(runs).to_csv(folder / "runs.csv", index=False)
    return folder


def test_a_cell_measured_in_other_units_is_noted_not_dropped(tmp_path: Path) -> None:
    def bigger_blocks(runs: pd.DataFrame) -> pd.DataFrame:
        runs.loc[runs["cell"] == "randread-4k", "bs"] = "1M"  # MiB/s now, where the base has IOPS
        return runs

    comparison = compare_folders(_analysed(FIXTURES / "basic-b"), [_analysed(_variant(tmp_path, "big", edit=bigger_blocks))])
    assert not (comparison.changes["cell"] == "randread-4k").any()
    notes = comparison.notes[comparison.notes["cell"] == "randread-4k"]
    assert len(notes) == 3 and not notes["compared"].any()
    assert "IOPS in the base folder, MiB/s in big" in notes["note"].iloc[0]
    # a cell run with other settings but the same unit is compared, with a note saying what changed
    def deeper(runs: pd.DataFrame) -> pd.DataFrame:
        runs.loc[runs["cell"] == "seqread-1m", "iodepth"] = 8
        return runs

    comparison = compare_folders(_analysed(FIXTURES / "basic-b"), [_analysed(_variant(tmp_path, "deep", edit=deeper))])
    assert (comparison.changes["cell"] == "seqread-1m").any()
    note = comparison.notes[comparison.notes["cell"] == "seqread-1m"]["note"].iloc[0]
    assert note.startswith("compared, but run with other settings: iodepth 1 -> 8")


def test_tables_follow_the_scenario_not_the_order_runs_were_made(tmp_path: Path) -> None:
    rotated = _variant(tmp_path, "rotated", edit=lambda runs: runs.iloc[::-1])
    comparison = compare_folders(_analysed(rotated), [_analysed(FIXTURES / "basic-c")])
    pairs = list(dict.fromkeys(zip(comparison.changes["cell"], comparison.changes["target"])))
    assert pairs == [(cell, target) for cell in ("seqread-1m", "randread-4k")
                     for target in ("native", "fuse", "passthrough")]
    metrics = list(dict.fromkeys(comparison.changes["metric"]))
    assert metrics == [metric for metric in COMPARED_METRICS if metric in metrics]


def test_a_folder_with_nothing_in_common_still_has_its_summary_row(tmp_path: Path) -> None:
    empty = _variant(tmp_path, "empty", edit=lambda runs: runs.iloc[:0])
    comparison = compare_folders(_analysed(FIXTURES / "basic"), [_analysed(empty)])
    row = comparison.summary.set_index(["folder", "metric"]).loc[("empty", PRIMARY)]
    assert row["pairs"] == 0 and pd.isna(row["geomean"])


def test_runs_with_a_zero_figure_are_left_out_and_said(tmp_path: Path) -> None:
    def no_requests(runs: pd.DataFrame) -> pd.DataFrame:
        fuse = runs["target"] == "fuse"
        runs.loc[fuse, ["fuse_read_requests", "fuse_write_requests", "fuse_other_requests"]] = 0
        return runs

    comparison = compare_folders(_analysed(FIXTURES / "basic-b"), [_analysed(_variant(tmp_path, "zero", edit=no_requests))])
    assert not ((comparison.changes["metric"] == "requests_per_gib") & (comparison.changes["target"] == "fuse")).any()
    assert any("FUSE requests per GiB: 3 runs with a figure of 0 left out" in note for note in comparison.notes["note"])


# ---------------------------------------------------------------- real folders (integration)

TINY = """\
name: tiny
repeat: 2
targets:
  - {{name: native, type: native}}
  - {{name: fuse, type: fuse}}
workloads:
{workloads}
"""


class Quiet(Host):
    """This machine, saying nothing."""

    def say(self, text: str) -> None:
        pass


READ = "  - {name: read, rw: read, bs: 1M, size: 8M, runtime: 1s}"
RANDREAD = "  - {name: randread, rw: randread, bs: 4k, size: 8M, runtime: 1s}"


@pytest.mark.integration
def test_three_real_folders_compare_on_every_metric(tmp_path: Path, require_root: None, require_fio: None) -> None:
    """Three real runs: a and b alike, c without `randread` and with its workdir on tmpfs instead
    of tmp_path's file system (a changed environment the manifest must show)."""
    folders = {name: tmp_path / name for name in "abc"}
    tmpfs = tmp_path / "tmpfs"
    tmpfs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "fusebench-test", str(tmpfs)], check=True)
    try:
        for name, workloads, workdir in (("a", [READ, RANDREAD], tmp_path / "work"),
                                         ("b", [READ, RANDREAD], tmp_path / "work"), ("c", [READ], tmpfs / "work")):
            scenario = tmp_path / f"{name}.yaml"
            scenario.write_text(TINY.format(workloads="\n".join(workloads)))
            assert run(RunOptions(scenario, out=folders[name], workdir=workdir, seed=1), Quiet()) == 0
    finally:
        subprocess.run(["umount", str(tmpfs)], check=True)
    done = subprocess.run([sys.executable, "-m", "bench", "compare", *map(str, folders.values()), "--format", "text",
                           "-o", "-"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for needle in ("against it: b, c", "[throughput or ops/s]", "[latency p99]", "[latency p99.9]", "[CPU s per GiB]",
                   "[CPU s per 1,000 ops]", "[FUSE requests per GiB]", "randread / fuse: in a, b; not in c",
                   "randread / native: in a, b; not in c", "c's environment differs from a's"):
        assert needle in text, needle
    assert any("fs_type" in line and line.rstrip().endswith("tmpfs") for line in text.splitlines())
    assert not (tmp_path / "reports").exists()  # -o -: nothing written
    comparison = compare_folders(_analysed(folders["a"]), [_analysed(folders["b"]), _analysed(folders["c"])])
    assert set(comparison.changes["metric"]) == set(COMPARED_METRICS)
    assert (comparison.changes["n"] == 2).all() and comparison.changes["ratio"].gt(0).all()
    assert set(comparison.summary["folder"]) == {"b", "c"}
