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
    runs = pd.read_csv(slower / "runs.csv")
    for column in [c for c in runs if c.endswith(("clat_p50_us", "clat_p99_us", "clat_p999_us"))]:
        runs[column] *= 2
    for column in ("fio_cpu_user_s", "fio_cpu_sys_s", "daemon_cpu_user_s", "daemon_cpu_sys_s"):
        runs[column] *= 2
    runs.to_csv(slower / "runs.csv", index=False)
    comparison = compare_folders(_analysed(FIXTURES / "basic-b"), [_analysed(slower)])
    for metric in ("clat_p50_us", "clat_p99_us", "cpu_s_per_gib", "cpu_s_per_kop"):
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
