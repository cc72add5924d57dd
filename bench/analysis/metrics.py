"""What is derived from the runs of a folder: the summary of each cell and target against
the baseline and plain FUSE, outlying runs, secondary metrics, CPU cost per GiB and per I/O, FUSE request counts,
latency percentiles from fio's histograms, and the fd-pressure steps and limits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.load import (
    GIB,
    LOWER_IS_BETTER,
    METRIC_UNITS,
    SECTIONS,
    Results,
    directions_sum,
    numeric,
)
from bench.analysis.statistics import (
    EMPTY_COMPARISON,
    EQUIVALENT,
    FASTER,
    SLOWER,
    UNDECIDED,
    Settings,
    compare,
    describe,
)
from bench.fio_output import FioError
from bench.opens import OpensResult
from bench.percentile import percentiles
from bench.records import STATUS_FAILED, STATUS_OK, STATUS_UNAVAILABLE
from bench.results import ResultsError

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
    with the baseline target and with the plain-FUSE target."""
    plain = first_of_type(results, "fuse")
    runs = results.runs
    expected = results.expected.groupby(["cell", "target"]).size()
    present = runs.groupby(["cell", "target"]).size()
    failed = runs[runs["status"] == STATUS_FAILED].groupby(["cell", "target"]).size()
    unavailable = runs[runs["status"] == STATUS_UNAVAILABLE].groupby(["cell", "target"]).size()
    outlying = runs[runs["outlier"]].groupby(["cell", "target"]).size()
    rows = []
    for cell in results.cells:
        cell_runs = runs[runs["cell"] == cell]
        if cell_runs.empty:
            continue
        metric, section = cell_runs["metric"].iloc[0], cell_runs["section"].iloc[0]
        workload = cell_runs["workload"].dropna().iloc[0] if cell_runs["workload"].notna().any() else cell
        for target in results.targets:
            key = (cell, target)
            if key not in expected.index and key not in present.index:
                continue
            values = values_of(groups, cell, target)
            row = {"section": section, "cell": cell, "workload": workload, "target": target,
                   "target_type": results.target_types.get(target, ""),
                   "metric": metric, "unit": METRIC_UNITS[metric],
                   "failed": int(failed.get(key, 0)), "unavailable": int(unavailable.get(key, 0)),
                   "missing": max(int(expected.get(key, 0)) - int(present.get(key, 0)), 0),
                   "outliers": int(outlying.get(key, 0))}
            row["excluded"] = int(present.get(key, 0)) - row["failed"] - row["unavailable"] - len(values)
            row.update(describe(values, settings))
            for label, base in (("baseline", results.baseline), ("plain", plain)):
                if base is None or target == base or (label == "plain" and row["target_type"] == "native"):
                    row.update({f"vs_{label}_{k}": v for k, v in EMPTY_COMPARISON.items()})
                    continue
                verdict = speed_ratio(metric in LOWER_IS_BETTER, values, values_of(groups, cell, base), settings)
                row.update({f"vs_{label}_{k}": v for k, v in verdict.items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def speed_ratio(lower_is_better: bool, new: np.ndarray, base: np.ndarray, settings: Settings) -> dict[str, Any]:
    """`compare` of new against base as a speed: for a figure where less is better (a time, a
    latency, a cost) base/new, so that above 1 is always faster."""
    if lower_is_better:
        return compare(base, new, settings)
    return compare(new, base, settings)


SUMMARY_COLUMNS = (
    ["section", "cell", "workload", "target", "target_type", "metric", "unit", "failed", "unavailable", "missing",
     "outliers", "excluded", "n", "median", "mean", "stdev", "cov", "ci_low", "ci_high", "ci_level", "min", "max"]
    + [f"vs_{label}_{k}" for label in ("baseline", "plain") for k in EMPTY_COMPARISON]
)

# A run is an outlier when it lies both more than OUTLIER_MADS robust standard deviations
# (1.4826 x the median absolute deviation) and more than OUTLIER_SHARE of the median from its
# cell's median. The MAD alone is erratic at 3-8 runs: it flagged a run in 20-33% of clean
# simulated cells; with the share too, none at 5% spread and 4-7% at 10%, while a run 40% off
# is still caught 74% of the time at 3 runs and 94% at 5. Marked, never dropped.
OUTLIER_MADS = 3.0
OUTLIER_SHARE = 0.25


def outliers(runs: pd.DataFrame) -> pd.Series:
    """Per run: whether its value is an outlier among the good runs of its cell and target
    (judged from 3 runs on)."""
    good = usable_runs(runs)
    flagged = pd.Series(False, index=runs.index)
    for _, frame in good.groupby(["cell", "target"], sort=False):
        values = frame["value"].astype(float)
        if len(values) < 3:
            continue
        median = values.median()
        deviation = (values - median).abs()
        spread = 1.4826 * deviation.median()
        flagged[frame.index] = (deviation > OUTLIER_MADS * spread) & (deviation > OUTLIER_SHARE * abs(median))
    return flagged


def values_of(groups: dict, cell: str, target: str | None, column: str = "value") -> np.ndarray:
    """The primary-metric values (or `column`'s) of one cell x target group (empty when it has none)."""
    frame = groups.get((cell, target))
    return np.array([]) if frame is None else frame[column].to_numpy(dtype=float)


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
                rows.append({"cell": cell, "target": target, "metric": metric, **describe(values, settings)})
    return pd.DataFrame(rows)


def in_order_rank(frame: pd.DataFrame, cells: list[str], targets: list[str]) -> pd.Series:
    """Each row's place by cell, then target, in scenario order (unknown ones last)."""
    cell_rank = {c: i for i, c in enumerate(cells)}
    target_rank = {t: i for i, t in enumerate(targets)}
    return frame["cell"].map(cell_rank).fillna(len(cells)) * (len(targets) + 1) + frame["target"].map(target_rank).fillna(len(targets))


def in_order(frame: pd.DataFrame, cells: list[str], targets: list[str]) -> pd.DataFrame:
    """Rows sorted by cell, then target, in scenario order (runs are interleaved, so data order is not)."""
    return frame.iloc[np.argsort(in_order_rank(frame, cells, targets).to_numpy(), kind="stable")].reset_index(drop=True)


# cpu_efficiency's columns: CPU seconds summed over the runs by part, GiB and thousands of operations
# moved, and the cost of each part and of their total per GiB and per 1,000 operations.
CPU_COLUMNS = ["cell", "target", *CPU_PARTS, "gib", "kios",
               *(f"{part}_per_{unit}" for part in (*CPU_PARTS, "total_s") for unit in ("gib", "kio"))]


def cpu_parts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: CPU seconds by process and user/sys (CPU_PARTS), the GiB moved and the thousands
    of operations done (I/Os, opens, program runs)."""
    runtime = numeric(runs, "fio_runtime_s").fillna(numeric(runs, "duration_s"))
    parts = pd.DataFrame({
        "cell": runs["cell"], "target": runs["target"],
        # fio's own percentages (of its runtime) are the fallback when the monitor has no figure.
        "fio_user_s": numeric(runs, "fio_cpu_user_s").fillna(numeric(runs, "fio_usr_cpu_pct") / 100 * runtime),
        "fio_sys_s": numeric(runs, "fio_cpu_sys_s").fillna(numeric(runs, "fio_sys_cpu_pct") / 100 * runtime),
        "daemon_user_s": numeric(runs, "daemon_cpu_user_s").fillna(0.0),
        "daemon_sys_s": numeric(runs, "daemon_cpu_sys_s").fillna(0.0),
        "gib": directions_sum(runs, "io_bytes").fillna(directions_sum(runs, "bw_mib_s") * runtime * (1 << 20))
               .fillna(numeric(runs, "mib") * (1 << 20)) / GIB,
        "kios": (directions_sum(runs, "iops") * runtime).fillna(numeric(runs, "ops")) / 1000.0,
    })
    if "section" in runs:  # a metadata engine's bytes are fio's accounting, not data moved
        parts["gib"] = parts["gib"].where(runs["section"] != "metadata")
    return parts


def cpu_efficiency(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """CPU seconds per GiB moved and per 1,000 operations, by process (the workload, the daemon)
    and user/sys, pooled over the runs of each cell x target."""
    totals = cpu_parts(runs).groupby(["cell", "target"], sort=False).sum(min_count=1).reset_index()
    if order is not None:
        totals = in_order(totals, *order)
    gib, kios = totals["gib"].where(totals["gib"] > 0), totals["kios"].where(totals["kios"] > 0)  # none moved: no cost per
    for part in CPU_PARTS:
        totals[f"{part}_per_gib"] = totals[part] / gib
        totals[f"{part}_per_kio"] = totals[part] / kios
    totals["total_s_per_gib"] = totals[list(CPU_PARTS)].sum(axis=1) / gib
    totals["total_s_per_kio"] = totals[list(CPU_PARTS)].sum(axis=1) / kios
    return totals.loc[:, CPU_COLUMNS]


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
    """The measured fd-pressure steps (a failed or unavailable step has no figures), labelled by
    config, configurations in the order they ran (the scenario's), then by N; with
    idle_bytes_per_file, the slab bytes per opened file still cached after the close
    (idle_slab_bytes / opened; empty where nothing opened or before format 7)."""
    if frame is None or frame.empty or not {"target", "open_files"} <= set(frame):
        return pd.DataFrame(columns=["config", "target", "open_files", "idle_bytes_per_file"])
    policy = frame["fd_policy"] if "fd_policy" in frame else pd.Series(pd.NA, index=frame.index)
    config = pd.Series([fd_config_label(t, p) for t, p in zip(frame["target"], policy)], index=frame.index)
    rank = {label: i for i, label in enumerate(dict.fromkeys(config))}  # the order they ran in: the scenario's
    opened = numeric(frame, "opened")
    steps = frame.assign(config=config, failed=numeric(frame, "failed").fillna(0), _rank=config.map(rank),
                         idle_bytes_per_file=numeric(frame, "idle_slab_bytes") / opened.where(opened > 0))
    steps = steps[steps["status"] == STATUS_OK]
    return steps.sort_values(["_rank", "open_files"], kind="stable").drop(columns="_rank")


FD_LIMIT_COLUMNS = ["config", "daemon_nofile", "max_ok", "first_failed_n", "failed", "errno"]


def fd_limits(steps: pd.DataFrame) -> pd.DataFrame:
    """Per target/policy: the largest N that fully succeeded and the first N with failed > 0 (errno)."""
    if steps.empty:
        return pd.DataFrame(columns=FD_LIMIT_COLUMNS)
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
    return pd.DataFrame(rows, columns=FD_LIMIT_COLUMNS)


LATENCY_FRAME_COLUMNS = ["cell", "target", "direction", "percentile", "latency_us", "ios"]


def latency_percentiles(results: Results, runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per cell x target x direction, latency percentiles (us) of the histograms summed over all
    its runs: fio's clat by read and write, an open/close loop's by open and close; and the run
    ids whose output could not be read (left out, never silently)."""
    summed: dict[tuple[str, str, str], Counter[int]] = {}
    unreadable = []
    for run_id, cell, target in zip(runs["run_id"], runs["cell"], runs["target"]):
        try:
            result = results.folder.fio_result(run_id)
        except FioError as exc:
            unreadable.append(f"{run_id}: {exc}")
            continue
        if result is not None:
            histograms = {direction: getattr(result, direction).clat_bins for direction in ("read", "write")}
        elif (loop := _opens_result(results, run_id, unreadable)) is not None:
            histograms = {"open": loop.open_ns, "close": loop.close_ns}
        else:
            continue
        for direction, bins in histograms.items():
            if bins:
                summed.setdefault((cell, target, direction), Counter()).update(bins)
    rows = []
    for (cell, target, direction), bins in summed.items():
        count = sum(bins.values())
        rows.extend({"cell": cell, "target": target, "direction": direction, "percentile": p,
                     "latency_us": ns / 1000.0, "ios": count}
                    for p, ns in zip(LATENCY_PERCENTILES, percentiles(bins, LATENCY_PERCENTILES)))
    return pd.DataFrame(rows, columns=LATENCY_FRAME_COLUMNS), unreadable


def _opens_result(results: Results, run_id: str, unreadable: list[str]) -> OpensResult | None:
    try:
        return results.folder.opens_result(run_id)
    except ResultsError as exc:
        unreadable.append(f"{run_id}: {exc}")
        return None


PER_OP_COLUMNS = ["cell", "target", "target_type", "opcode", "per_run", "per_op", "per_file", "per_mib", "runs"]


def requests_per_op(results: Results, runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None
                    ) -> pd.DataFrame:
    """Per cell x FUSE target x opcode: the median over runs of its requests per run, per
    operation, per file and per MiB moved (operations: fio's I/Os, the loop's opens, 1 per
    program run). A run that counted requests but none of an opcode had 0 of it."""
    requests = results.folder.requests()
    if requests is None or requests.empty or "ops" not in runs:
        return pd.DataFrame(columns=PER_OP_COLUMNS)
    counted = runs[(runs["target_type"] != "native") & runs["fuse_requests_source"].notna()]
    wide = requests.pivot_table(index="run_id", columns="opcode", values="requests", aggfunc="sum", fill_value=0)
    wide = wide.reindex(index=counted["run_id"], fill_value=0)
    if wide.empty:
        return pd.DataFrame(columns=PER_OP_COLUMNS)
    every = wide.stack().rename("requests").reset_index()
    work = counted.loc[:, ["run_id", "cell", "target", "target_type"]].assign(
        ops=numeric(counted, "ops"), files=numeric(counted, "files"), mib=numeric(counted, "mib"))
    joined = every.merge(work, on="run_id")
    count = joined["requests"].astype("float64")
    joined = joined.assign(per_op=count / joined["ops"], per_file=count / joined["files"],
                           per_mib=(count / joined["mib"]).where(joined["mib"] > 0))
    frame = (joined.groupby(["cell", "target", "target_type", "opcode"], sort=False)
             .agg(per_run=("requests", "median"), per_op=("per_op", "median"), per_file=("per_file", "median"),
                  per_mib=("per_mib", "median"), runs=("run_id", "nunique"), seen=("requests", "max"))
             .reset_index())
    frame = frame[frame["seen"] > 0].drop(columns="seen").sort_values("per_op", ascending=False, kind="stable")
    return in_order(frame, *order) if order is not None else frame.reset_index(drop=True)


WORK_COLUMNS = ["cell", "target", "ops", "files", "mib", "backing_opens_per_op", "backing_open_us", "backing_close_us"]


def work_done(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """Per cell x target, medians over the runs: operations, files and MiB per run, the backing
    files the built-in passthrough server registered per operation, and the time of one
    BACKING_OPEN and one BACKING_CLOSE ioctl in it."""
    if "ops" not in runs:
        return pd.DataFrame(columns=WORK_COLUMNS)
    frame = pd.DataFrame({"cell": runs["cell"], "target": runs["target"], "ops": numeric(runs, "ops"),
                          "files": numeric(runs, "files"), "mib": numeric(runs, "mib"),
                          "backing_opens_per_op": numeric(runs, "backing_opens") / numeric(runs, "ops"),
                          "backing_open_us": numeric(runs, "backing_open_us"),
                          "backing_close_us": numeric(runs, "backing_close_us")})
    frame = frame.dropna(subset=["ops"]).groupby(["cell", "target"], sort=False).median().reset_index()
    return in_order(frame, *order) if order is not None else frame


def device_share(runs: pd.DataFrame) -> pd.Series:
    """Per good direct-I/O run with device counters: of the bytes fio moved in each direction,
    the share the block device moved in that direction; the smaller of the two when fio both
    read and wrote (NaN otherwise). Below 1/2, a cache answered what O_DIRECT should not."""
    shares = []
    for direction in ("read", "write"):
        moved = numeric(runs, f"{direction}_io_bytes")
        shares.append((numeric(runs, f"dev_{direction}_bytes") / moved).where(moved > 0))
    share = pd.concat(shares, axis=1).min(axis=1, skipna=True)
    direct = (runs["direct"] == True) & (runs["status"] == STATUS_OK)  # noqa: E712
    return share.where(direct)


DISK_COLUMNS = ["cell", "target", "fio_mib", "dev_read_mib", "dev_write_mib", "device_share"]


def device_traffic(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """Per cell x target, medians over the runs: MiB fio moved and MiB the block device under the
    work directory read and wrote meanwhile, and the device share of direct-I/O runs."""
    if "dev_read_bytes" not in runs or numeric(runs, "dev_read_bytes").isna().all():
        return pd.DataFrame(columns=DISK_COLUMNS)
    frame = pd.DataFrame({"cell": runs["cell"], "target": runs["target"],
                          "fio_mib": directions_sum(runs, "io_bytes") / (1 << 20),
                          "dev_read_mib": numeric(runs, "dev_read_bytes") / (1 << 20),
                          "dev_write_mib": numeric(runs, "dev_write_bytes") / (1 << 20),
                          "device_share": device_share(runs)})
    frame = frame.groupby(["cell", "target"], sort=False).median().reset_index()
    return in_order(frame, *order) if order is not None else frame


PASSTHROUGH_VERDICTS = (FASTER, EQUIVALENT, SLOWER, UNDECIDED)  # in the order the summary names them


def passthrough_verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """Per section: in how many cells passthrough is decided faster than plain FUSE, equivalent
    or slower, or undecided, and the cells of each verdict with their speed ratio."""
    rows = summary[(summary["target_type"] == "passthrough") & summary["vs_plain_ratio"].notna()]
    out = []
    for section in SECTIONS:
        cells = rows[rows["section"] == section]
        if cells.empty:
            continue
        entry = {"section": section, "cells": len(cells)}
        for name in PASSTHROUGH_VERDICTS:
            chosen = cells[cells["vs_plain_verdict"] == name]
            entry[name] = len(chosen)
            entry[f"{name}_cells"] = [(row.cell, row.target, float(row.vs_plain_ratio)) for row in chosen.itertuples()]
        out.append(entry)
    return pd.DataFrame(out, columns=["section", "cells", *(f"{v}{suffix}" for v in PASSTHROUGH_VERDICTS
                                                              for suffix in ("", "_cells"))])
