"""bench.analysis.sweeps: which cells form a curve, their x values and axis scale, the metric
and statistics of each point, and every run at its point."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pytest
from sweep_folder import OUTLIER, sweep_folder

from bench import analysis
from bench.analysis.sweeps import axis_scale, curves_of, x_value


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> analysis.Analysis:
    return analysis.analyse(analysis.load(sweep_folder(tmp_path_factory.mktemp("s") / "sweeps")))


@pytest.mark.parametrize("values, scale", [
    ([1, 4, 16, 64], "log"),
    ([4096, 65536, 1 << 20], "log"),
    ([1, 32], "log"),
    ([64, 1, 16, 4, 4], "log"),         # order and repeats do not matter
    ([1, 2, 4, 8, 16, 64], "log"),      # steps of 2 and 4: roughly constant
    ([1, 2, 3, 4], "linear"),
    ([10, 20, 30], "linear"),
    ([1, 2, 64], "linear"),             # steps of 2 and 32: not geometric
    ([0, 1, 2], "linear"),
    ([5], "linear"),
])
def test_a_log_axis_where_values_grow_geometrically(values: list[int], scale: str) -> None:
    assert axis_scale(values) == scale


@pytest.mark.parametrize("key, value, x", [
    ("bs", "64k", 65536.0), ("bs", 4096, 4096.0), ("size", "1M", float(1 << 20)), ("iodepth", 32, 32.0),
    ("runtime", 2.5, 2.5), ("rw", "read", None), ("direct", True, None), ("bs", "lots", None),
])
def test_swept_values_on_the_x_axis(key: str, value, x: float | None) -> None:
    assert x_value(key, value) == x


def test_the_x_axis_is_the_numeric_key_with_most_values_the_others_make_panels() -> None:
    combos = product([1, 4], [1, 2], ["read", "write"])
    cells = {f"c{i}": {"iodepth": depth, "numjobs": jobs, "rw": rw} for i, (depth, jobs, rw) in enumerate(combos)}
    curves = curves_of("w", cells)
    assert {(c.key, c.scale) for c in curves} == {("iodepth", "log")}  # a tie: the first in the scenario's order
    assert [c.panel for c in curves] == ["rw=read, numjobs=1", "rw=write, numjobs=1", "rw=read, numjobs=2",
                                         "rw=write, numjobs=2"]
    assert curves[0].points == [("c0", 1.0, "1"), ("c4", 4.0, "4")]
    three = {**cells, "c8": {"iodepth": 1, "numjobs": 3, "rw": "read"}}
    assert {c.key for c in curves_of("w", three)} == {"numjobs"}
    assert curves_of("w", {"a": {"rw": "read"}, "b": {"rw": "write"}}) == []  # nothing numeric to draw against
    assert curves_of("w", {"a": {"iodepth": 4}}) == []  # one value is no curve


def curve(result: analysis.Analysis, workload: str, panel: str):
    points = result.sweeps
    return points[(points["workload"] == workload) & (points["panel"] == panel)]


def test_each_numeric_sweep_is_a_curve_per_value_of_the_other_keys(swept: analysis.Analysis) -> None:
    curves = list(dict.fromkeys(zip(swept.sweeps["workload"], swept.sweeps["panel"])))
    assert curves == [("depth", "numjobs=1"), ("depth", "numjobs=2"), ("blocks", ""),
                      ("jobs", "rw=read"), ("jobs", "rw=write")]  # `single` sweeps nothing
    keys = swept.sweeps.groupby("workload", sort=False)[["key", "scale"]].first()
    assert keys.to_dict("index") == {"depth": {"key": "iodepth", "scale": "log"},
                                     "blocks": {"key": "bs", "scale": "log"},
                                     "jobs": {"key": "numjobs", "scale": "linear"}}


def test_points_in_order_of_their_value_with_the_median_and_its_interval(swept: analysis.Analysis) -> None:
    depth = curve(swept, "depth", "numjobs=1")
    native = depth[depth["target"] == "native"]
    assert list(native["x"]) == [1.0, 4.0, 16.0, 64.0] and list(native["x_label"]) == ["1", "4", "16", "64"]
    at_4 = native[native["x"] == 4.0].iloc[0]
    assert (at_4["metric"], at_4["unit"], at_4["n"]) == ("iops", "IOPS", 3)
    assert (at_4["median"], at_4["ci_low"], at_4["ci_high"], at_4["ci_level"]) == pytest.approx(
        (20480.0, 20275.2, 20684.8, 0.75))
    assert list(depth["target"][:3]) == ["native", "fuse", "passthrough"]


def test_sizes_sort_by_bytes_and_mixed_metrics_become_bandwidth(swept: analysis.Analysis) -> None:
    blocks = curve(swept, "blocks", "")
    native = blocks[blocks["target"] == "native"]
    assert list(native["x_label"]) == ["4k", "64k", "1m"]  # the scenario lists 1m, 4k, 64k
    assert list(native["x"]) == [4096.0, 65536.0, float(1 << 20)]
    # 4k random reads are judged in IOPS, 64k and 1m in MiB/s: the curve is in MiB/s throughout
    assert set(blocks["unit"]) == {"MiB/s"}
    assert list(native["median"]) == pytest.approx([40.0, 160.0, 640.0])
    write = curve(swept, "jobs", "rw=write")
    assert write[(write["target"] == "native") & (write["x"] == 3.0)]["median"].iloc[0] == pytest.approx(1920.0)


def test_every_good_run_is_at_its_point_with_its_outlier_mark(swept: analysis.Analysis) -> None:
    runs = swept.sweep_runs
    assert len(runs) == len(swept.sweeps) * 3 == 51 * 3
    flagged = runs[runs["outlier"]]
    assert list(zip(flagged["run_id"], flagged["x"])) == [(f"{OUTLIER[0]}--{OUTLIER[1]}--r{OUTLIER[2]}", 16.0)]
    point = runs[(runs["workload"] == "depth") & (runs["panel"] == "numjobs=2") & (runs["x"] == 64.0)
                 & (runs["target"] == "fuse")]
    assert sorted(point["value"]) == pytest.approx([x * 40 * 8 * 2 * 0.5 * 256 for x in (0.99, 1.0, 1.01)])


def test_a_folder_without_sweeps_has_no_curves() -> None:
    basic = analysis.analyse(analysis.load(Path(__file__).parent / "fixtures" / "results" / "basic"))
    assert basic.sweeps.empty and basic.sweep_runs.empty
    assert "workload" in basic.sweeps and "outlier" in basic.sweep_runs
