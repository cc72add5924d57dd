"""Two results folders side by side: B relative to A per matching cell and target."""

from __future__ import annotations

import pandas as pd

from bench.analysis import Analysis
from bench.analysis.metrics import EMPTY_COMPARISON, speed_ratio, usable_runs, values_of


def compare_folders(a: Analysis, b: Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per matching cell x target, B relative to A as a speed (above 1: B is faster, also for
    programs' times); and the cell x target pairs present in one only."""
    settings = a.settings
    # A pair counts as present only with data: a planned but never-run pair is "only in" the other.
    with_data_a, with_data_b = a.summary[a.summary["n"] > 0], b.summary[b.summary["n"] > 0]
    keys_a = set(zip(with_data_a["cell"], with_data_a["target"]))
    keys_b = set(zip(with_data_b["cell"], with_data_b["target"]))
    groups_a = dict(iter(usable_runs(a.results.runs).groupby(["cell", "target"], sort=False)))
    groups_b = dict(iter(usable_runs(b.results.runs).groupby(["cell", "target"], sort=False)))
    rows = []
    for row in with_data_a.itertuples():
        key = (row.cell, row.target)
        if key not in keys_b:
            continue
        other = b.summary[(b.summary["cell"] == row.cell) & (b.summary["target"] == row.target)].iloc[0]
        if other["metric"] != row.metric:
            continue
        verdict = speed_ratio(row.metric, values_of(groups_b, *key), values_of(groups_a, *key), settings, "compare", *key)
        rows.append({"cell": row.cell, "target": row.target, "metric": row.metric, "unit": row.unit,
                     "n_a": row.n, "median_a": row.median, "n_b": int(other["n"]), "median_b": other["median"],
                     **verdict})
    only = [{"cell": c, "target": t, "only_in": "A"} for c, t in sorted(keys_a - keys_b)]
    only += [{"cell": c, "target": t, "only_in": "B"} for c, t in sorted(keys_b - keys_a)]
    changes = pd.DataFrame(rows, columns=["cell", "target", "metric", "unit", "n_a", "median_a", "n_b", "median_b",
                                          *EMPTY_COMPARISON])
    return changes, pd.DataFrame(only, columns=["cell", "target", "only_in"])
