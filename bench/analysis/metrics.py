"""What is derived from the runs of a folder: the summary of each cell and target against
native and plain FUSE, secondary metrics, CPU cost per GiB and per I/O, FUSE request counts,
latency percentiles from fio's histograms, and the fd-pressure steps and limits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.load import GIB, METRIC_UNITS, Results, directions_sum, numeric
from bench.analysis.statistics import Settings, compare, describe
from bench.fio_output import FioError
from bench.percentile import percentiles
from bench.records import STATUS_FAILED, STATUS_OK, STATUS_UNAVAILABLE

LATENCY_PERCENTILES = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99)
CPU_PARTS = ("fio_user_s", "fio_sys_s", "daemon_user_s", "daemon_sys_s")

# Secondary per-run metrics summarised next to the primary one.
SECONDARY_METRICS = (
    "read_clat_p50_us", "read_clat_p99_us", "write_clat_p50_us", "write_clat_p99_us",
    "daemon_fds_max", "daemon_rss_max_kib", "fuse_other_requests",
)


def usable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that count: status ok with a value, and passthrough runs only where it engaged."""
    not_engaged = (runs["target_type"] == "passthrough") & (runs["passthrough_engaged"] == False)  # noqa: E712
    return runs[(runs["status"] == STATUS_OK) & runs["value"].notna() & ~not_engaged.fillna(False)]


def summary(results: Results, groups: dict, settings: Settings) -> pd.DataFrame:
    """Per cell x target: what was run, the primary metric's statistics, and the comparison
    with the native and the plain-FUSE target."""
    native = first_of_type(results, "native")
    plain = first_of_type(results, "fuse")
    runs = results.runs
    expected = results.expected.groupby(["cell", "target"]).size()
    present = runs.groupby(["cell", "target"]).size()
    failed = runs[runs["status"] == STATUS_FAILED].groupby(["cell", "target"]).size()
    unavailable = runs[runs["status"] == STATUS_UNAVAILABLE].groupby(["cell", "target"]).size()
    rows = []
    for cell in results.cells:
        cell_runs = runs[runs["cell"] == cell]
        if cell_runs.empty:
            continue
        metric = cell_runs["metric"].iloc[0]
        workload = cell_runs["workload"].dropna().iloc[0] if cell_runs["workload"].notna().any() else cell
        for target in results.targets:
            key = (cell, target)
            if key not in expected.index and key not in present.index:
                continue
            values = values_of(groups, cell, target)
            row = {"cell": cell, "workload": workload, "target": target,
                   "target_type": results.target_types.get(target, ""),
                   "metric": metric, "unit": METRIC_UNITS[metric],
                   "failed": int(failed.get(key, 0)), "unavailable": int(unavailable.get(key, 0)),
                   "missing": max(int(expected.get(key, 0)) - int(present.get(key, 0)), 0)}
            row["excluded"] = int(present.get(key, 0)) - row["failed"] - row["unavailable"] - len(values)
            row.update(describe(values, settings, cell, target))
            for label, base in (("native", native), ("plain", plain)):
                if base is None or target == base or (label == "plain" and row["target_type"] == "native"):
                    row.update({f"vs_{label}_{k}": v for k, v in EMPTY_COMPARISON.items()})
                    continue
                verdict = compare(values, values_of(groups, cell, base), settings, cell, target, base)
                row.update({f"vs_{label}_{k}": v for k, v in verdict.items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


EMPTY_COMPARISON = {"ratio": np.nan, "ratio_low": np.nan, "ratio_high": np.nan, "p": np.nan, "significant": False}

SUMMARY_COLUMNS = (
    ["cell", "workload", "target", "target_type", "metric", "unit", "failed", "unavailable", "missing", "excluded",
     "n", "median", "mean", "stdev", "cov", "ci_low", "ci_high", "min", "max"]
    + [f"vs_{label}_{k}" for label in ("native", "plain") for k in EMPTY_COMPARISON]
)


def values_of(groups: dict, cell: str, target: str | None) -> np.ndarray:
    """The primary-metric values of one cell x target group (empty when it has none)."""
    frame = groups.get((cell, target))
    return np.array([]) if frame is None else frame["value"].to_numpy(dtype=float)


def first_of_type(results: Results, kind: str) -> str | None:
    """The first target of a type, in scenario order."""
    return next((t for t in results.targets if results.target_types.get(t) == kind), None)


def secondary(groups: dict, settings: Settings) -> pd.DataFrame:
    """Per cell x target x metric: the statistics of SECONDARY_METRICS."""
    rows = []
    for (cell, target), frame in groups.items():
        for metric in SECONDARY_METRICS:
            values = numeric(frame, metric).dropna().to_numpy(dtype=float)
            if len(values):
                rows.append({"cell": cell, "target": target, "metric": metric,
                             **describe(values, settings, cell, target, metric)})
    return pd.DataFrame(rows)


def in_order(frame: pd.DataFrame, cells: list[str], targets: list[str]) -> pd.DataFrame:
    """Rows sorted by cell, then target, in scenario order (runs are interleaved, so data order is not)."""
    cell_rank = {c: i for i, c in enumerate(cells)}
    target_rank = {t: i for i, t in enumerate(targets)}
    key = frame["cell"].map(cell_rank).fillna(len(cells)) * (len(targets) + 1) + frame["target"].map(target_rank).fillna(len(targets))
    return frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def cpu_efficiency(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """CPU seconds per GiB moved and per 1,000 I/Os, by process (fio, daemon) and user/sys."""
    runtime = numeric(runs, "fio_runtime_s").fillna(numeric(runs, "duration_s"))
    parts = pd.DataFrame({
        "cell": runs["cell"], "target": runs["target"],
        # fio's own percentages (of its runtime) are the fallback when the monitor has no figure.
        "fio_user_s": numeric(runs, "fio_cpu_user_s").fillna(numeric(runs, "fio_usr_cpu_pct") / 100 * runtime),
        "fio_sys_s": numeric(runs, "fio_cpu_sys_s").fillna(numeric(runs, "fio_sys_cpu_pct") / 100 * runtime),
        "daemon_user_s": numeric(runs, "daemon_cpu_user_s").fillna(0.0),
        "daemon_sys_s": numeric(runs, "daemon_cpu_sys_s").fillna(0.0),
        "gib": directions_sum(runs, "io_bytes").fillna(directions_sum(runs, "bw_mib_s") * runtime * (1 << 20)) / GIB,
        "kios": directions_sum(runs, "iops") * runtime / 1000.0,
    })
    totals = parts.groupby(["cell", "target"], sort=False).sum(min_count=1).reset_index()
    if order is not None:
        totals = in_order(totals, *order)
    for part in CPU_PARTS:
        totals[f"{part}_per_gib"] = totals[part] / totals["gib"]
        totals[f"{part}_per_kio"] = totals[part] / totals["kios"]
    totals["total_s_per_gib"] = totals[list(CPU_PARTS)].sum(axis=1) / totals["gib"]
    totals["total_s_per_kio"] = totals[list(CPU_PARTS)].sum(axis=1) / totals["kios"]
    return totals


REQUEST_COLUMNS = ("fuse_read_requests", "fuse_write_requests", "fuse_other_requests")


def request_counts(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """Median FUSE requests per run (read, write, other) for FUSE targets that counted them."""
    fuse = runs[runs["target_type"] != "native"]
    counts = pd.DataFrame({"cell": fuse["cell"], "target": fuse["target"], "target_type": fuse["target_type"],
                           **{column: numeric(fuse, column) for column in REQUEST_COLUMNS}})
    counts = counts.dropna(subset=list(REQUEST_COLUMNS), how="all")
    counts = counts.groupby(["cell", "target", "target_type"], sort=False).median().reset_index()
    return in_order(counts, *order) if order is not None else counts


def fd_config_label(target: Any, policy: Any) -> str:
    """'target' or 'target/policy' for an fd-pressure configuration."""
    return f"{target}/{policy}" if pd.notna(policy) and str(policy) else str(target)


def fd_steps(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The measured fd-pressure steps (a failed or unavailable step has no figures), labelled by config."""
    if frame is None or frame.empty or not {"target", "open_files"} <= set(frame):
        return pd.DataFrame(columns=["config", "target", "open_files"])
    steps = frame[frame["status"] == STATUS_OK]
    policy = steps["fd_policy"] if "fd_policy" in steps else pd.Series(pd.NA, index=steps.index)
    return steps.assign(config=[fd_config_label(t, p) for t, p in zip(steps["target"], policy)],
                        failed=numeric(steps, "failed").fillna(0)).sort_values(["config", "open_files"], kind="stable")


def fd_limits(steps: pd.DataFrame) -> pd.DataFrame:
    """Per target/policy: the largest N that fully succeeded and the first N with failed > 0 (errno)."""
    columns = ["config", "daemon_nofile", "max_ok", "first_failed_n", "failed", "errno"]
    if steps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for config, steps in steps.groupby("config", sort=False):
        bad = steps[steps["failed"] > 0]
        good = steps[steps["failed"] == 0]
        first = bad.iloc[0] if not bad.empty else None
        rows.append({
            "config": config,
            "daemon_nofile": steps["daemon_nofile"].iloc[0] if "daemon_nofile" in steps else np.nan,
            "max_ok": good["open_files"].max() if not good.empty else np.nan,
            "first_failed_n": first["open_files"] if first is not None else np.nan,
            "failed": first["failed"] if first is not None else 0,
            "errno": str(first.get("errno", "")) if first is not None and pd.notna(first.get("errno")) else "",
        })
    return pd.DataFrame(rows, columns=columns)


def latency_percentiles(results: Results, runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per cell x target x direction, clat percentiles (us) of fio's histograms summed over all
    its runs; and the run ids whose fio output could not be read (left out, never silently)."""
    summed: dict[tuple[str, str, str], Counter[int]] = {}
    unreadable = []
    for run_id, cell, target in zip(runs["run_id"], runs["cell"], runs["target"]):
        try:
            result = results.folder.fio_result(run_id)
        except FioError as exc:
            unreadable.append(f"{run_id}: {exc}")
            continue
        if result is None:
            continue
        for direction in ("read", "write"):
            bins = getattr(result, direction).clat_bins
            if bins:
                summed.setdefault((cell, target, direction), Counter()).update(bins)
    rows = []
    for (cell, target, direction), bins in summed.items():
        count = sum(bins.values())
        rows.extend({"cell": cell, "target": target, "direction": direction, "percentile": p,
                     "latency_us": ns / 1000.0, "ios": count}
                    for p, ns in zip(LATENCY_PERCENTILES, percentiles(bins, LATENCY_PERCENTILES)))
    return pd.DataFrame(rows, columns=["cell", "target", "direction", "percentile", "latency_us", "ios"]), unreadable
