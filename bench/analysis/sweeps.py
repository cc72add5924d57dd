"""Sweeps as curves: the cells of a workload that differ in a numeric swept key form a curve of
the metric against that key's values (sizes by their bytes), one curve per combination of the
workload's other swept keys (a panel); the axis is logarithmic where the values grow
geometrically. Per point and target: the statistics of the curve's metric, and every good run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.load import METRIC_UNITS, Results, metric_value
from bench.analysis.statistics import Settings, describe
from bench.fusefs.units import parse_size
from bench.scenario import SIZE_KEYS, SWEEPABLE, swept_value_text

# Values grow geometrically (a log axis) when every step multiplies them by more than
# GEOMETRIC_STEP and the largest step is at most GEOMETRIC_SPREAD times the smallest (in logs):
# 1, 4, 16, 64 and 4k, 64k, 1m do, so do 1, 32 and 1, 2, 4, 8, 16, 64; 1, 2, 3, 4 and 10, 20, 30 do not.
GEOMETRIC_STEP = 1.5
GEOMETRIC_SPREAD = 3.0
# A curve whose cells are judged by different metrics (4k random blocks in IOPS, 1m in MiB/s)
# is drawn in bandwidth, which every block size has.
COMMON_METRIC = "bw_mib_s"

POINT_COLUMNS = ["workload", "panel", "key", "scale", "x", "x_label", "cell", "target", "metric", "unit",
                 "n", "median", "mean", "stdev", "cov", "ci_low", "ci_high", "ci_level", "min", "max"]
DOT_COLUMNS = ["workload", "panel", "x", "target", "run_id", "value", "outlier"]


def axis_scale(values: Any) -> str:
    """'log' when the distinct values, sorted, grow geometrically; else 'linear'."""
    xs = np.unique(np.asarray(values, dtype=float))
    if len(xs) < 2 or xs[0] <= 0:
        return "linear"
    steps = np.log(xs[1:] / xs[:-1])
    geometric = steps.min() > np.log(GEOMETRIC_STEP) and steps.max() <= GEOMETRIC_SPREAD * steps.min()
    return "log" if geometric else "linear"


def x_value(key: str, value: Any) -> float | None:
    """A swept value as a position on the x axis (a size in bytes); None when it is not a number
    (a pattern, an engine, a flag)."""
    if key in SIZE_KEYS:
        try:
            return float(parse_size(value))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class Curve:
    """The cells of a workload that differ only in its x key: one line per target in a panel."""

    workload: str
    panel: str      # the values of the workload's other swept keys ("numjobs=2"), "" when none
    key: str        # the swept key on the x axis
    scale: str      # "log" or "linear", from every value the key takes in the workload
    points: list[tuple[str, float, str]]  # (cell, x, x as the cell name shows it), x ascending


def curves_of(workload: str, cells: dict[str, dict[str, Any]]) -> list[Curve]:
    """The curves of one workload's cells (cell -> its swept values): the numeric key with the
    most values is the x axis (ties: the first in the scenario's key order), every combination
    of the other keys a panel; none when no numeric key takes two values."""
    sweeps = list(cells.values())
    keys = _ordered(sweeps)
    numeric = [k for k in keys if all(x_value(k, sweep.get(k)) is not None for sweep in sweeps)]
    distinct = {k: len({x_value(k, sweep[k]) for sweep in sweeps}) for k in numeric}
    key = max((k for k in numeric if distinct[k] > 1), key=distinct.__getitem__, default=None)
    if key is None:
        return []
    others = [k for k in keys if k != key and len({str(sweep.get(k)) for sweep in sweeps}) > 1]
    panels = {cell: ", ".join(f"{k}={swept_value_text(k, sweep.get(k))}" for k in others) for cell, sweep in cells.items()}
    xs = {cell: x_value(key, sweep[key]) for cell, sweep in cells.items()}
    labels = {cell: swept_value_text(key, int(xs[cell]) if key in SIZE_KEYS else sweep[key]) for cell, sweep in cells.items()}
    scale = axis_scale(list(xs.values()))
    return [Curve(workload, panel, key, scale,
                  sorted(((cell, xs[cell], labels[cell]) for cell in cells if panels[cell] == panel), key=lambda p: p[1]))
            for panel in dict.fromkeys(panels.values())]


def sweeps_of(results: Results, groups: dict, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every curve of the folder's sweeps: per point and target the statistics of the curve's
    metric (`sweeps`), and every good run at its point with its outlier mark (`sweep_runs`);
    `groups` are the good runs by (cell, target)."""
    points: list[dict] = []
    dots: list[pd.DataFrame] = []
    for workload, cells in _swept_cells(results).items():
        for curve in curves_of(workload, cells):
            metric = _metric(results.runs, [cell for cell, _, _ in curve.points])
            for cell, x, label in curve.points:
                where = {"workload": workload, "panel": curve.panel, "x": x}
                for target in results.targets:
                    frame = groups.get((cell, target))
                    figures = metric_value(frame, metric).dropna() if frame is not None else pd.Series(dtype=float)
                    if figures.empty:
                        continue
                    points.append({**where, "key": curve.key, "scale": curve.scale, "x_label": label, "cell": cell,
                                   "target": target, "metric": metric, "unit": METRIC_UNITS[metric],
                                   **describe(figures.to_numpy(dtype=float), settings)})
                    dots.append(pd.DataFrame({**where, "target": target, "run_id": frame.loc[figures.index, "run_id"],
                                              "value": figures,
                                              "outlier": frame.loc[figures.index, "outlier"].fillna(False).astype(bool)}))
    runs = pd.concat(dots, ignore_index=True)[DOT_COLUMNS] if dots else pd.DataFrame(columns=DOT_COLUMNS)
    return pd.DataFrame(points, columns=POINT_COLUMNS), runs


def _swept_cells(results: Results) -> dict[str, dict[str, dict[str, Any]]]:
    """workload -> cell -> its swept values, cells in scenario order; workloads without a sweep left out."""
    runs = results.runs
    if "sweep" not in runs:
        return {}
    first = runs.dropna(subset=["workload"]).drop_duplicates("cell").set_index("cell")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for cell in results.cells:
        if cell in first.index and (sweep := _parsed(first.at[cell, "sweep"])):
            out.setdefault(first.at[cell, "workload"], {})[cell] = sweep
    return out


def _parsed(text: Any) -> dict[str, Any]:
    try:
        sweep = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return sweep if isinstance(sweep, dict) else {}


def _ordered(sweeps: list[dict[str, Any]]) -> list[str]:
    """The swept keys in the scenario's key order (unknown ones last)."""
    rank = {key: i for i, key in enumerate(SWEEPABLE)}
    return sorted({key for sweep in sweeps for key in sweep}, key=lambda k: (rank.get(k, len(rank)), k))


def _metric(runs: pd.DataFrame, cells: list[str]) -> str:
    """The primary metric the cells share, else COMMON_METRIC."""
    metrics = set(runs.loc[runs["cell"].isin(cells), "metric"].dropna())
    return metrics.pop() if len(metrics) == 1 else COMMON_METRIC
