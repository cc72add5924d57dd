"""bench.analysis.fdmemory and statistics.linear_fit: kernel memory per open file as slopes, and
the figures a reader would quote, on the synthetic fd-pressure folder (tests/fd_pressure_folder.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fd_pressure_folder import (
    BFILP_PER_FILE,
    CACHE_SIZE,
    IDLE_PER_FILE,
    PER_FILE,
    RELEASES,
    fd_pressure_folder,
    step,
)
from scipy import stats

from bench import analysis
from bench.analysis.fdmemory import (
    FD_MEMORY_COLUMNS,
    fd_figures,
    fd_memory,
    fd_releases,
)
from bench.analysis.metrics import fd_limits, fd_steps
from bench.analysis.statistics import linear_fit

BASIC = Path(__file__).parent / "fixtures" / "results" / "basic"


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> analysis.Analysis:
    return analysis.analyse(analysis.load(fd_pressure_folder(tmp_path_factory.mktemp("fd") / "fd-scale")))


def test_linear_fit_is_exact_on_a_line() -> None:
    x = np.array([1000, 10_000, 100_000, 1_000_000, 1000])
    fit = linear_fit(x, 3.0 + 2.5 * x)
    assert (fit.slope, fit.intercept, fit.n) == (pytest.approx(2.5), pytest.approx(3.0, abs=1e-6), 5)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.slope_low == pytest.approx(2.5) and fit.slope_high == pytest.approx(2.5)  # no scatter, no width


def test_linear_fit_interval_is_the_t_interval_of_the_slope() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([2.1, 3.9, 6.2, 7.8, 10.1, 12.3])
    fit = linear_fit(x, y)
    reference = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(x) - 2) * reference.stderr
    assert fit.slope == pytest.approx(reference.slope) and fit.intercept == pytest.approx(reference.intercept)
    assert fit.r2 == pytest.approx(reference.rvalue ** 2)
    assert (fit.slope_low, fit.slope_high) == (pytest.approx(reference.slope - half),
                                               pytest.approx(reference.slope + half))


def test_linear_fit_needs_two_points_and_three_for_an_interval() -> None:
    two = linear_fit(np.array([1.0, 2.0]), np.array([5.0, 7.0]))
    assert (two.slope, two.n, two.r2) == (2.0, 2, 1.0)
    assert np.isnan(two.slope_low) and np.isnan(two.slope_high)
    # a point without a y is dropped: two left
    dropped = linear_fit(np.array([1.0, 2.0, 3.0]), np.array([5.0, np.nan, 9.0]))
    assert (dropped.n, dropped.slope) == (2, 2.0) and np.isnan(dropped.slope_low)
    assert linear_fit(np.array([1.0, 2.0]), np.array([5.0, np.nan])) is None
    assert linear_fit(np.array([3.0, 3.0, 3.0]), np.array([1.0, 2.0, 3.0])) is None  # one N only
    flat = linear_fit(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert flat.slope == 0.0 and np.isnan(flat.r2)


def test_fd_memory_slopes_per_1000_files(scaled: analysis.Analysis) -> None:
    memory = scaled.fd_memory
    assert list(memory.columns) == FD_MEMORY_COLUMNS
    fits = memory.set_index(["config", "quantity"])
    close = fits.loc[("passthrough-close/close", "slab_bytes")]
    assert close["slope_per_1000"] == pytest.approx(PER_FILE["passthrough-close"] * 1000)
    assert (close["unit"], close["n"], close["r2"]) == ("bytes", 8, pytest.approx(1.0))  # 4 N x 2 releases pooled
    assert close["slope_low"] == pytest.approx(close["slope_per_1000"])
    assert fits.loc[("passthrough-close/close", "meminfo_slab"), "slope_per_1000"] == pytest.approx(
        PER_FILE["passthrough-close"] * 1250, rel=1e-3)
    assert fits.loc[("passthrough-close/close", "meminfo_slab"), "intercept"] == pytest.approx(2 << 20, rel=1e-3)
    assert fits.loc[("passthrough-keep/keep", "backing_file_objects"), "slope_per_1000"] == pytest.approx(1000)
    assert fits.loc[("fuse", "dentry_objects"), ("slope_per_1000", "unit")].tolist() == [pytest.approx(2000), "objects"]
    assert fits.loc[("native", "idle_slab_bytes"), "slope_per_1000"] == pytest.approx(IDLE_PER_FILE * 1000)
    assert set(memory["config"]) == {"native", "fuse", "passthrough-keep/keep", "passthrough-close/close",
                                     "passthrough-cache/cache"}


def test_fd_memory_leaves_out_what_it_cannot_fit() -> None:
    rows = [step("passthrough-close", n, "drop_caches").model_dump() for n in (1000, 10_000)]
    rows[1]["meminfo_slab_kib"] = None            # one point left: no line
    rows.append({**step("native", 1000, "drop_caches").model_dump()})  # a single step: nothing at all
    steps = fd_steps(pd.DataFrame(rows))
    memory = fd_memory(steps)
    assert set(memory["config"]) == {"passthrough-close/close"}
    assert "meminfo_slab" not in set(memory["quantity"]) and "slab_bytes" in set(memory["quantity"])
    assert memory["n"].eq(2).all() and memory["slope_low"].isna().all()
    assert fd_memory(fd_steps(None)).empty


def test_the_figures_to_quote(scaled: analysis.Analysis) -> None:
    figures = scaled.fd_figures.set_index("config")
    close = figures.loc["passthrough-close/close"]
    assert (close["max_held"], close["at_n"]) == (1_000_000, 1_000_000)
    assert close["slab_bytes_per_file"] == pytest.approx(3072)
    assert close["files_per_gib"] == pytest.approx(2**30 / 3072)
    assert close["files_per_gib_meminfo"] == pytest.approx(2**30 / (3072 * 1.25), rel=1e-3)
    assert close["open_p50_us"] == pytest.approx(52.0) and close["open_p99_us"] == pytest.approx(156.0)
    assert (close["idle_ids"], close["idle_bytes_per_file"]) == (0, pytest.approx(IDLE_PER_FILE))
    keep = figures.loc["passthrough-keep/keep"]
    assert (keep["max_held"], keep["first_failed_n"], keep["errno"], keep["at_n"]) == (100_000, 1_000_000, "EMFILE",
                                                                                       100_000)
    cache = figures.loc["passthrough-cache/cache"]
    assert (cache["idle_ids"], cache["closed_ids"]) == (CACHE_SIZE, 1_000_000 - CACHE_SIZE)
    assert cache["idle_bytes_per_file"] == pytest.approx(IDLE_PER_FILE + 1536 * CACHE_SIZE / 1_000_000)
    assert np.isnan(figures.loc["native", "idle_ids"])
    assert close["bfilp_bytes_per_file"] == BFILP_PER_FILE and np.isnan(figures.loc["fuse", "bfilp_bytes_per_file"])


def test_idle_bytes_per_file_is_a_column_of_the_steps(scaled: analysis.Analysis) -> None:
    steps = scaled.fd_steps
    cache = steps[(steps["config"] == "passthrough-cache/cache") & (steps["open_files"] == 1_000_000)]
    assert cache["idle_bytes_per_file"].tolist() == [pytest.approx(IDLE_PER_FILE + 1536 * CACHE_SIZE / 1_000_000)] * 2
    rows = [step("passthrough-close", 1000, "unmount").model_dump() for _ in range(2)]
    rows[1].update(opened=0, idle_slab_bytes=4096)        # nothing opened: no bytes per file
    assert fd_steps(pd.DataFrame(rows))["idle_bytes_per_file"].tolist()[1:] == [pytest.approx(np.nan, nan_ok=True)]
    assert "idle_bytes_per_file" in fd_steps(None)


def test_one_n_only_measures_the_bytes_per_file_there() -> None:
    steps = fd_steps(pd.DataFrame([step("passthrough-close", 1000, release).model_dump() for release in RELEASES]))
    figures = fd_figures(steps, fd_memory(steps), fd_limits(steps)).set_index("config")
    close = figures.loc["passthrough-close/close"]
    assert close["slab_bytes_per_file"] == PER_FILE["passthrough-close"] and np.isnan(close["slab_r2"])
    assert close["files_per_gib"] == pytest.approx(2**30 / PER_FILE["passthrough-close"])


def test_release_times_per_method_at_the_largest_n(scaled: analysis.Analysis) -> None:
    releases = scaled.fd_releases.set_index(["config", "release"])
    cache = releases.loc[("passthrough-cache/cache", "drop_caches")]
    assert (cache["open_files"], cache["release_s"]) == (1_000_000, pytest.approx(0.1 + CACHE_SIZE * 1e-5))
    assert releases.loc[("passthrough-cache/cache", "unmount"), "release_s"] == pytest.approx(1.5)
    assert np.isnan(releases.loc[("passthrough-close/close", "unmount"), "release_s"])   # nothing idle: not timed
    assert bool(releases.loc[("native", "unmount"), "returned_to_baseline"])
    assert len(releases) == 10


def test_an_older_folder_has_figures_but_no_slopes() -> None:
    """basic is format 2: no slab, idle or release columns (they load empty)."""
    basic = analysis.analyse(analysis.load(BASIC))
    assert set(basic.fd_memory["quantity"]) == {"backing_file_objects"} and basic.fd_releases.empty
    assert basic.fd_memory.set_index("config").loc["passthrough/close", "slope_per_1000"] == pytest.approx(1000)
    figures = basic.fd_figures.set_index("config")
    assert figures.loc["fuse", "max_held"] == 1000 and np.isnan(figures.loc["fuse", "slab_bytes_per_file"])
    assert figures.loc["fuse", "open_p50_us"] == pytest.approx(21.0)
    # and from a frame without those columns at all
    frame = pd.read_csv(BASIC / "fd_pressure.csv")
    steps = fd_steps(frame)
    limits = fd_limits(steps)
    assert set(fd_memory(steps)["quantity"]) == {"backing_file_objects"} and fd_releases(steps).empty
    assert len(fd_figures(steps, fd_memory(steps), limits)) == 3
