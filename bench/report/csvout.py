"""CSV report: the summary table, one row per cell x target, full precision, CPU costs joined."""

from __future__ import annotations

import pandas as pd

from bench.analysis import CPU_PARTS, Analysis

_CPU_COLUMNS = [f"{part}_per_{unit}" for unit in ("gib", "kio") for part in (*CPU_PARTS, "total_s")]


def render_report(analysis: Analysis) -> str:
    """The summary table as CSV text."""
    cpu = analysis.cpu.loc[:, ["cell", "target", *_CPU_COLUMNS]] if not analysis.cpu.empty else None
    table = analysis.summary if cpu is None else analysis.summary.merge(cpu, on=["cell", "target"], how="left")
    return table.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def render_comparison(a: Analysis, b: Analysis, changes: pd.DataFrame, only: pd.DataFrame) -> str:
    """Per matching cell x target B/A; cells in one folder only get `only_in` and no figures."""
    table = pd.concat([changes.assign(only_in=""), only], ignore_index=True)
    return table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
