"""Behaviour over a run: for each cell and target the representative run (the one closest to
the median), and its primary metric over time from the log fio kept of it (bench.fio_logs)."""

from __future__ import annotations

import pandas as pd

from bench.analysis.load import Results
from bench.records import STATUS_OK

# A primary metric -> the fio log that shows it over time.
METRIC_LOGS = {"bw_mib_s": "bw", "iops": "iops", "ops_s": "iops"}
COLUMNS = ["cell", "target", "run_id", "t_s", "value", "unit"]


def representative_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell x target, the good run whose value is closest to the median (ties: first)."""
    runs = runs[(runs["status"] == STATUS_OK) & runs["value"].notna()]
    if runs.empty:
        return runs
    median = runs.groupby(["cell", "target"])["value"].transform("median")
    distance = (runs["value"] - median).abs()
    return runs.loc[distance.groupby([runs["cell"], runs["target"]], sort=False).idxmin()]


def throughput_over_time(results: Results, runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Each of `runs`' primary metric over time (`COLUMNS`), from the bandwidth or IOPS log fio
    kept; and the lines of those logs that could not be read. A run without a log (a folder
    before format 5, `log_interval: 0`, a family fio does not run) is left out."""
    frames, damaged = [], []
    for run in runs.itertuples():
        kind = METRIC_LOGS.get(run.metric)
        log = results.folder.fio_log(run.run_id, kind) if kind else None
        if log is None:
            continue
        damaged += [f"{run.run_id}: fio's {kind} log {problem}" for problem in log.damaged]
        frames.append(pd.DataFrame({"cell": run.cell, "target": run.target, "run_id": run.run_id, "t_s": log.t_s,
                                    "value": log.value, "unit": run.unit}, columns=COLUMNS))
    timeline = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return timeline, damaged
