"""Several results folders against one: every other folder relative to the base folder, per
common cell, target and metric (throughput or ops/s, latency, CPU cost, FUSE requests), as a
speed with its interval and verdict; a summary per folder; the pairs some folders lack or that
cannot be compared; and what differs in their environments."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench.analysis import Analysis, environment
from bench.analysis.load import LOWER_IS_BETTER, METRIC_UNITS, numeric
from bench.analysis.metrics import (
    REQUEST_COLUMNS,
    cpu_parts,
    in_order,
    in_order_rank,
    speed_ratio,
    usable_runs,
    values_of,
)
from bench.analysis.statistics import (
    EMPTY_COMPARISON,
    VERDICTS,
    Settings,
    contrast_interval,
    decide,
    verdict_tally,
)
from bench.environment import differences
from bench.records import WorkloadAsRun


class ComparedMetric(NamedTuple):
    """A figure `compare` judges: its label, its unit (None: the cell's own) and which way is better."""

    label: str
    unit: str | None
    lower_is_better: bool


PRIMARY = "primary"
LATENCIES = {"clat_p50_us": "p50", "clat_p99_us": "p99", "clat_p999_us": "p99.9"}  # fio's columns per direction
# Every metric `compare` judges, in the order reports show them; the per-run values come from run_metrics().
COMPARED_METRICS: dict[str, ComparedMetric] = {
    PRIMARY: ComparedMetric("throughput or ops/s", None, False),
    **{name: ComparedMetric(f"latency {percentile}", "us", True) for name, percentile in LATENCIES.items()},
    "cpu_s_per_gib": ComparedMetric("CPU s per GiB", "s/GiB", True),
    "cpu_s_per_kop": ComparedMetric("CPU s per 1,000 ops", "s/kop", True),
    "requests_per_gib": ComparedMetric("FUSE requests per GiB", "req/GiB", True),
}
# Workload settings that make a cell what it is: a cell whose settings differ between folders is flagged.
SETTINGS = tuple(WorkloadAsRun.model_fields)
RELATIVE_COLUMNS = ["rel_ratio", "rel_low", "rel_high", "rel_verdict"]
CHANGE_COLUMNS = ["folder", "cell", "target", "metric", "unit", "n_base", "median_base", "n", "median",
                  *EMPTY_COMPARISON, *RELATIVE_COLUMNS]
SUMMARY_COLUMNS = ["folder", "metric", "pairs", "geomean", *VERDICTS]
ONLY_COLUMNS = ["cell", "target", "present_in", "missing_in"]
NOTE_COLUMNS = ["folder", "cell", "target", "compared", "note"]


@dataclass
class Comparison:
    """Other folders relative to a base folder."""

    base: Analysis
    others: list[Analysis]
    names: list[str]            # a distinct name per folder: base first, then the others
    settings: Settings          # the base folder's, with one look: folders are compared once
    changes: pd.DataFrame       # CHANGE_COLUMNS: per metric x cell x target (scenario order) x other folder
    summary: pd.DataFrame       # SUMMARY_COLUMNS: per other folder x metric (pairs 0 when none compared)
    only: pd.DataFrame          # ONLY_COLUMNS: pairs some folders lack
    notes: pd.DataFrame         # NOTE_COLUMNS: pairs not compared, or compared with a caveat, and why
    differences: dict[str, list[str]]  # other folder name -> 'key: base -> other' lines


def folder_names(paths: list[Path]) -> list[str]:
    """A short distinct name per folder: its own name, with its parent's when two share one."""
    names = [Path(path).resolve().name for path in paths]
    if len(set(names)) == len(names):
        return names
    named = [f"{Path(path).resolve().parent.name}/{Path(path).resolve().name}" for path in paths]
    return named if len(set(named)) == len(named) else [f"{name}#{i}" for i, name in enumerate(names, 1)]


def run_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """Per usable run: cell, target, its primary metric's name and unit, and each COMPARED_METRICS
    figure (NaN where it does not apply). Latency is the slower direction's fio percentile; CPU
    counts the workload and the daemon."""
    used = usable_runs(runs)
    parts = cpu_parts(used)
    cpu = parts[["fio_user_s", "fio_sys_s", "daemon_user_s", "daemon_sys_s"]].sum(axis=1, min_count=1)
    gib, kops = parts["gib"].where(parts["gib"] > 0), parts["kios"].where(parts["kios"] > 0)
    requests = pd.concat([numeric(used, column) for column in REQUEST_COLUMNS], axis=1).sum(axis=1, min_count=1)
    frame = pd.DataFrame({"cell": used["cell"], "target": used["target"], "metric": used["metric"],
                          PRIMARY: used["value"].astype(float)})
    for name in LATENCIES:
        frame[name] = pd.concat([numeric(used, f"read_{name}"), numeric(used, f"write_{name}")], axis=1).max(axis=1)
    frame["cpu_s_per_gib"] = cpu / gib
    frame["cpu_s_per_kop"] = cpu / kops
    frame["requests_per_gib"] = (requests / gib).where(used["target_type"] != "native")
    for column in SETTINGS:
        frame[column] = used[column].map(lambda value: "" if pd.isna(value) else str(value)) if column in used else ""
    return frame


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


def _positive(frame: pd.DataFrame, metric: str) -> tuple[np.ndarray, int]:
    """A group's values of `metric` that a ratio of geometric means can use, and how many runs
    had a figure of 0 or less (left out)."""
    values = frame[metric].dropna().to_numpy(dtype=float)
    return values[values > 0], int((values <= 0).sum())


class _Pairs:
    """One folder's runs by cell x target."""

    def __init__(self, analysis: Analysis) -> None:
        self.groups = dict(iter(run_metrics(analysis.results.runs).groupby(["cell", "target"], sort=False)))
        self.baseline = analysis.baseline


def _relative(base: _Pairs, other: _Pairs, key: tuple[str, str], lower: bool, settings: Settings) -> dict:
    """(other target / other baseline) / (base target / base baseline): the change a faster or
    slower disk in one folder leaves alone (both targets moved with it)."""
    none = dict.fromkeys(RELATIVE_COLUMNS, np.nan) | {"rel_verdict": ""}
    cell, target = key
    if base.baseline is None or base.baseline != other.baseline or target == base.baseline:
        return none
    over = [values_of(other.groups, cell, target, PRIMARY), values_of(base.groups, cell, base.baseline, PRIMARY)]
    under = [values_of(other.groups, cell, base.baseline, PRIMARY), values_of(base.groups, cell, target, PRIMARY)]
    if not all(len(v) and (v > 0).all() for v in (*over, *under)):
        return none
    ratio = contrast_interval(*((under, over) if lower else (over, under)), settings.confidence)
    return {"rel_ratio": ratio.ratio, "rel_low": ratio.low, "rel_high": ratio.high,
            "rel_verdict": decide(ratio, settings.threshold)}


def _settings_text(frame: pd.DataFrame) -> dict[str, str]:
    return {column: ",".join(sorted(set(frame[column]))) for column in SETTINGS}


def _compare_pair(base: _Pairs, other: _Pairs, name: str, key: tuple[str, str], settings: Settings,
                  notes: list[dict]) -> list[dict]:
    """Every metric of one cell x target of `other` against the base, noting what was left out."""
    mine, theirs = base.groups[key], other.groups[key]
    note = {"folder": name, "cell": key[0], "target": key[1]}
    primary, other_primary = mine["metric"].iloc[0], theirs["metric"].iloc[0]
    if primary != other_primary:
        notes.append(note | {"compared": False, "note": f"not compared: its figure is {METRIC_UNITS[primary]} in "
                                                        f"the base folder, {METRIC_UNITS[other_primary]} in {name}"})
        return []
    changed = [f"{column} {a} -> {b}" for column, (a, b) in
               zip(SETTINGS, zip(_settings_text(mine).values(), _settings_text(theirs).values())) if a != b]
    if changed:
        notes.append(note | {"compared": True, "note": "compared, but run with other settings: " + ", ".join(changed)})
    rows = []
    for metric, what in COMPARED_METRICS.items():
        (old, dropped_old), (new, dropped_new) = _positive(mine, metric), _positive(theirs, metric)
        if dropped_old or dropped_new:
            notes.append(note | {"compared": True, "note": f"{what.label}: {dropped_old + dropped_new} runs with "
                                                            "a figure of 0 left out (a ratio needs positive figures)"})
        if not len(new) or not len(old):
            continue
        lower = what.lower_is_better if metric != PRIMARY else primary in LOWER_IS_BETTER
        relative = _relative(base, other, key, lower, settings) if metric == PRIMARY else \
            dict.fromkeys(RELATIVE_COLUMNS, np.nan) | {"rel_verdict": ""}
        rows.append({**note, "metric": metric, "unit": what.unit or METRIC_UNITS[primary], "n_base": len(old),
                     "median_base": float(np.median(old)), "n": len(new), "median": float(np.median(new)),
                     **speed_ratio(lower, new, old, settings), **relative})
    return rows


def _summary(changes: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        for metric in COMPARED_METRICS:
            mine = changes[(changes["folder"] == name) & (changes["metric"] == metric)]
            if mine.empty and metric != PRIMARY:
                continue
            geomean, counts = verdict_tally(mine["ratio"].to_numpy(), list(mine["verdict"]))
            rows.append({"folder": name, "metric": metric, "pairs": len(mine), "geomean": geomean, **counts})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _present(analysis: Analysis) -> set[tuple[str, str]]:
    summary = analysis.summary
    with_data = summary[summary["n"] > 0]
    return set(zip(with_data["cell"], with_data["target"]))


def _only(analyses: list[Analysis], names: list[str]) -> pd.DataFrame:
    """Cell x target pairs with data in some folders and not in others (a planned but never-run
    pair counts as absent), in the base folder's scenario order, then the others'."""
    present = [_present(analysis) for analysis in analyses]
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


def compare_folders(base: Analysis, others: list[Analysis], names: list[str] | None = None) -> Comparison:
    """Every other folder relative to `base`, as speeds (above 1: the other folder is better, for
    latency, CPU cost, request counts and programs' times too). The base folder's threshold and
    confidence, with one look: `repeat: auto`'s wider intervals guard its own repeated checks,
    not a comparison made once."""
    names = names or folder_names([base.results.path, *(other.results.path for other in others)])
    settings = dataclasses.replace(base.settings, looks=1)
    mine = _Pairs(base)
    rows: list[dict] = []
    notes: list[dict] = []
    for other, name in zip(others, names[1:]):
        theirs = _Pairs(other)
        for key in mine.groups.keys() & theirs.groups.keys():
            rows += _compare_pair(mine, theirs, name, key, settings, notes)
    # metric, then cell and target in the base folder's scenario order, then folder
    changes = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    ranks = [changes["folder"].map({name: i for i, name in enumerate(names)}),
             in_order_rank(changes, base.results.cells, base.results.targets),
             changes["metric"].map({metric: i for i, metric in enumerate(COMPARED_METRICS)})]
    changes = changes.iloc[np.lexsort([rank.to_numpy() for rank in ranks])].reset_index(drop=True)
    notes_frame = in_order(pd.DataFrame(notes, columns=NOTE_COLUMNS), base.results.cells, base.results.targets)
    return Comparison(
        base=base, others=others, names=names, settings=settings, changes=changes,
        summary=_summary(changes, names[1:]),
        only=_only([base, *others], names),
        notes=notes_frame,
        differences={name: environment_differences(base, other) for other, name in zip(others, names[1:])},
    )
