"""Several results folders against one: every other folder relative to the base folder, per
common cell, target and metric (throughput or ops/s, latency, CPU cost, FUSE requests), as a
speed with its interval and verdict; a summary per folder; the pairs some folders lack; and
what differs in their environments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench.analysis import Analysis, environment
from bench.analysis.load import LOWER_IS_BETTER, numeric
from bench.analysis.metrics import REQUEST_COLUMNS, cpu_parts, usable_runs
from bench.analysis.statistics import (
    EMPTY_COMPARISON,
    EQUIVALENT,
    FASTER,
    SLOWER,
    UNDECIDED,
    contrast_interval,
    decide,
)
from bench.analysis.statistics import compare as compare_values
from bench.environment import differences


class ComparedMetric(NamedTuple):
    """A figure `compare` judges: its label, its unit (None: the cell's own) and which way is better."""

    label: str
    unit: str | None
    lower_is_better: bool


PRIMARY = "primary"
# Every metric `compare` judges, in the order reports show them; the per-run values come from run_metrics().
COMPARED_METRICS: dict[str, ComparedMetric] = {
    PRIMARY: ComparedMetric("throughput or ops/s", None, False),
    "clat_p50_us": ComparedMetric("latency p50", "us", True),
    "clat_p99_us": ComparedMetric("latency p99", "us", True),
    "clat_p999_us": ComparedMetric("latency p99.9", "us", True),
    "cpu_s_per_gib": ComparedMetric("CPU s per GiB", "s/GiB", True),
    "cpu_s_per_kop": ComparedMetric("CPU s per 1,000 ops", "s/kop", True),
    "requests_per_gib": ComparedMetric("FUSE requests per GiB", "req/GiB", True),
}
RELATIVE_COLUMNS = ["rel_ratio", "rel_low", "rel_high", "rel_verdict"]
CHANGE_COLUMNS = ["folder", "cell", "target", "metric", "unit", "n_base", "median_base", "n", "median",
                  *EMPTY_COMPARISON, *RELATIVE_COLUMNS]
SUMMARY_COLUMNS = ["folder", "metric", "pairs", "geomean", FASTER, SLOWER, EQUIVALENT, UNDECIDED]
ONLY_COLUMNS = ["cell", "target", "present_in", "missing_in"]


@dataclass
class Comparison:
    """Other folders relative to a base folder."""

    base: Analysis
    others: list[Analysis]
    names: list[str]            # a distinct name per folder: base first, then the others
    changes: pd.DataFrame       # CHANGE_COLUMNS: per other folder x common cell x target x metric
    summary: pd.DataFrame       # SUMMARY_COLUMNS: per other folder x metric
    only: pd.DataFrame          # cell, target, present_in, missing_in: pairs some folders lack
    differences: dict[str, list[str]]  # other folder name -> 'key: base -> other' lines

    @property
    def settings(self):
        """The statistics settings every comparison used (the base folder's)."""
        return self.base.settings


def folder_names(paths: list[Path]) -> list[str]:
    """A short distinct name per folder: its own name, with its parent's when two share one."""
    names = [Path(path).resolve().name for path in paths]
    if len(set(names)) == len(names):
        return names
    named = [f"{Path(path).resolve().parent.name}/{Path(path).resolve().name}" for path in paths]
    return named if len(set(named)) == len(named) else [f"{name}#{i}" for i, name in enumerate(names, 1)]


def run_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """Per usable run: cell, target and each COMPARED_METRICS figure (NaN where it does not apply).
    Latency is the slower direction's fio percentile; CPU counts the workload and the daemon."""
    used = usable_runs(runs)
    parts = cpu_parts(used)
    cpu = parts[["fio_user_s", "fio_sys_s", "daemon_user_s", "daemon_sys_s"]].sum(axis=1, min_count=1)
    gib, kops = parts["gib"].where(parts["gib"] > 0), parts["kios"].where(parts["kios"] > 0)
    requests = pd.concat([numeric(used, column) for column in REQUEST_COLUMNS], axis=1).sum(axis=1, min_count=1)
    frame = pd.DataFrame({"cell": used["cell"], "target": used["target"], "metric_name": used["metric"],
                          "unit": used["unit"], PRIMARY: used["value"].astype(float)})
    for name in ("clat_p50_us", "clat_p99_us", "clat_p999_us"):
        frame[name] = pd.concat([numeric(used, f"read_{name}"), numeric(used, f"write_{name}")], axis=1).max(axis=1)
    frame["cpu_s_per_gib"] = cpu / gib
    frame["cpu_s_per_kop"] = cpu / kops
    frame["requests_per_gib"] = (requests / gib).where(used["target_type"] != "native")
    return frame


def _speed(metric: str, primary_metric: str, new: np.ndarray, base: np.ndarray, settings) -> dict:
    lower = COMPARED_METRICS[metric].lower_is_better if metric != PRIMARY else primary_metric in LOWER_IS_BETTER
    return compare_values(base, new, settings) if lower else compare_values(new, base, settings)


def _positive(values: pd.Series) -> np.ndarray:
    values = values.dropna().to_numpy(dtype=float)
    return values[values > 0]


def _relative(base: Analysis, other: Analysis, key: tuple[str, str], groups: tuple[dict, dict], lower: bool) -> dict:
    """(other target / other baseline) / (base target / base baseline): the change a faster or
    slower disk in one folder leaves alone (both targets moved with it)."""
    none = dict.fromkeys(RELATIVE_COLUMNS, np.nan) | {"rel_verdict": ""}
    baseline = base.baseline
    cell, target = key
    if baseline is None or baseline != other.baseline or target == baseline:
        return none
    mine, theirs = groups

    def values(groups: dict, target: str) -> np.ndarray:
        frame = groups.get((cell, target))
        return np.array([]) if frame is None else _positive(frame[PRIMARY])

    over = [values(theirs, target), values(mine, baseline)]
    under = [values(theirs, baseline), values(mine, target)]
    if not all(len(v) for v in (*over, *under)):
        return none
    ratio = contrast_interval(*((under, over) if lower else (over, under)), base.settings.confidence)
    return {"rel_ratio": ratio.ratio, "rel_low": ratio.low, "rel_high": ratio.high,
            "rel_verdict": decide(ratio, base.settings.threshold)}


def _pairs(analysis: Analysis) -> set[tuple[str, str]]:
    summary = analysis.summary
    with_data = summary[summary["n"] > 0]
    return set(zip(with_data["cell"], with_data["target"]))


def _changes(base: Analysis, other: Analysis, name: str) -> list[dict]:
    settings = base.settings
    mine = dict(iter(run_metrics(base.results.runs).groupby(["cell", "target"], sort=False)))
    theirs = dict(iter(run_metrics(other.results.runs).groupby(["cell", "target"], sort=False)))
    rows = []
    for key, frame in mine.items():
        other_frame = theirs.get(key)
        if other_frame is None:
            continue
        primary_metric = frame["metric_name"].iloc[0]
        if other_frame["metric_name"].iloc[0] != primary_metric:
            continue
        for metric, what in COMPARED_METRICS.items():
            new, old = _positive(other_frame[metric]), _positive(frame[metric])
            if not len(new) or not len(old):
                continue
            verdict = _speed(metric, primary_metric, new, old, settings)
            relative = dict.fromkeys(RELATIVE_COLUMNS, np.nan) | {"rel_verdict": ""}
            if metric == PRIMARY:
                relative = _relative(base, other, key, (mine, theirs), primary_metric in LOWER_IS_BETTER)
            rows.append({"folder": name, "cell": key[0], "target": key[1], "metric": metric,
                         "unit": what.unit or frame["unit"].iloc[0], "n_base": len(old),
                         "median_base": float(np.median(old)), "n": len(new), "median": float(np.median(new)),
                         **verdict, **relative})
    return rows


def _summary(changes: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        for metric in COMPARED_METRICS:
            mine = changes[(changes["folder"] == name) & (changes["metric"] == metric)]
            if mine.empty:
                continue
            counts = mine["verdict"].value_counts()
            rows.append({"folder": name, "metric": metric, "pairs": len(mine),
                         "geomean": float(np.exp(np.log(mine["ratio"]).mean())),
                         **{verdict: int(counts.get(verdict, 0)) for verdict in (FASTER, SLOWER, EQUIVALENT, UNDECIDED)}})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _only(analyses: list[Analysis], names: list[str]) -> pd.DataFrame:
    """Cell x target pairs with data in some folders and not in others (a planned but never-run
    pair counts as absent)."""
    present = [_pairs(analysis) for analysis in analyses]
    order: dict[tuple[str, str], None] = {}
    for analysis in analyses:
        for key in zip(analysis.summary["cell"], analysis.summary["target"]):
            order.setdefault(key)
    rows = []
    for key in order:
        holders = [name for name, pairs in zip(names, present) if key in pairs]
        if holders and len(holders) < len(names):
            rows.append({"cell": key[0], "target": key[1], "present_in": holders,
                         "missing_in": [name for name in names if name not in holders]})
    return pd.DataFrame(rows, columns=ONLY_COLUMNS)


def environment_differences(a: Analysis, b: Analysis, limit: int = 40) -> list[str]:
    """What differs between the two folders' environments, one 'key: A -> B' line each (the
    whole recorded environment when both have one, else the short facts)."""
    env_a, env_b = a.results.manifest, b.results.manifest
    if env_a and env_b and env_a.environment and env_b.environment:
        pairs = differences(env_a.environment, env_b.environment)
    else:
        short_a, short_b = environment(a.results), environment(b.results)
        pairs = [(key, short_a[key], short_b[key]) for key in ("kernel", "cpu", "memory", "fio", "tool")
                 if short_a[key] != short_b[key]]

    def shown(value) -> str:
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "..."

    lines = [f"{key}: {shown(va)} -> {shown(vb)}" for key, va, vb in pairs if key != "workdir.path"]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def compare_folders(base: Analysis, others: list[Analysis], names: list[str] | None = None) -> Comparison:
    """Every other folder relative to `base`, as speeds (above 1: the other folder is better, for
    latency, CPU cost, request counts and programs' times too)."""
    names = names or folder_names([base.results.path, *(other.results.path for other in others)])
    rows = [row for other, name in zip(others, names[1:]) for row in _changes(base, other, name)]
    changes = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    return Comparison(
        base=base, others=others, names=names, changes=changes,
        summary=_summary(changes, names[1:]),
        only=_only([base, *others], names),
        differences={name: environment_differences(base, other) for other, name in zip(others, names[1:])},
    )
