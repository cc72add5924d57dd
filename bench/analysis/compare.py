"""Two results folders side by side: B relative to A per matching cell and target, as a speed,
and the same relative to each folder's baseline (what a change of disk or host between the two
runs leaves alone, since both targets moved with it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import Analysis
from bench.analysis.load import LOWER_IS_BETTER
from bench.analysis.metrics import speed_ratio, usable_runs, values_of
from bench.analysis.statistics import EMPTY_COMPARISON, contrast_interval, decide

RELATIVE_COLUMNS = ["rel_ratio", "rel_low", "rel_high", "rel_verdict"]


def compare_folders(a: Analysis, b: Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per matching cell x target, B relative to A as a speed (above 1: B is faster, also for
    programs' times), and the change of its speed against the baseline (`rel_*`, when both
    folders have the same baseline); and the cell x target pairs present in one only."""
    settings = a.settings
    # A pair counts as present only with data: a planned but never-run pair is "only in" the other.
    with_data_a, with_data_b = a.summary[a.summary["n"] > 0], b.summary[b.summary["n"] > 0]
    keys_a = set(zip(with_data_a["cell"], with_data_a["target"]))
    keys_b = set(zip(with_data_b["cell"], with_data_b["target"]))
    groups_a = dict(iter(usable_runs(a.results.runs).groupby(["cell", "target"], sort=False)))
    groups_b = dict(iter(usable_runs(b.results.runs).groupby(["cell", "target"], sort=False)))
    baseline = a.baseline if a.baseline == b.baseline else None
    rows = []
    for row in with_data_a.itertuples():
        key = (row.cell, row.target)
        if key not in keys_b:
            continue
        other = b.summary[(b.summary["cell"] == row.cell) & (b.summary["target"] == row.target)].iloc[0]
        if other["metric"] != row.metric:
            continue
        verdict = speed_ratio(row.metric, values_of(groups_b, *key), values_of(groups_a, *key), settings)
        relative = dict.fromkeys(RELATIVE_COLUMNS, np.nan) | {"rel_verdict": ""}
        if baseline is not None and row.target != baseline:
            # (B target / B baseline) / (A target / A baseline), turned round for times.
            over = [values_of(groups_b, *key), values_of(groups_a, row.cell, baseline)]
            under = [values_of(groups_b, row.cell, baseline), values_of(groups_a, *key)]
            if all(len(values) for values in (*over, *under)):
                ratio = contrast_interval(*((under, over) if row.metric in LOWER_IS_BETTER else (over, under)),
                                          settings.confidence)
                relative = {"rel_ratio": ratio.ratio, "rel_low": ratio.low, "rel_high": ratio.high,
                            "rel_verdict": decide(ratio, settings.threshold)}
        rows.append({"cell": row.cell, "target": row.target, "metric": row.metric, "unit": row.unit,
                     "n_a": row.n, "median_a": row.median, "n_b": int(other["n"]), "median_b": other["median"],
                     **verdict, **relative})
    only = [{"cell": c, "target": t, "only_in": "A"} for c, t in sorted(keys_a - keys_b)]
    only += [{"cell": c, "target": t, "only_in": "B"} for c, t in sorted(keys_b - keys_a)]
    changes = pd.DataFrame(rows, columns=["cell", "target", "metric", "unit", "n_a", "median_a", "n_b", "median_b",
                                          *EMPTY_COMPARISON, *RELATIVE_COLUMNS])
    return changes, pd.DataFrame(only, columns=["cell", "target", "only_in"])
