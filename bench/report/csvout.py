"""CSV report: the summary table, one row per cell x target, full precision, CPU costs joined."""

from __future__ import annotations

import pandas as pd

from bench.analysis import Analysis
from bench.analysis.compare import Comparison
from bench.analysis.metrics import CPU_COLUMNS

_CPU_COLUMNS = [column for column in CPU_COLUMNS if "_per_" in column]  # costs, not the sums behind them


def render_report(analysis: Analysis) -> str:
    """The summary table as CSV text."""
    cpu = analysis.cpu.loc[:, ["cell", "target", *_CPU_COLUMNS]] if not analysis.cpu.empty else None
    table = analysis.summary if cpu is None else analysis.summary.merge(cpu, on=["cell", "target"], how="left")
    return table.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def render_comparison(comparison: Comparison) -> str:
    """Every change at full precision, one row per folder x cell x target x metric; the pairs some
    folders lack follow with `present_in` and `missing_in` (folder names joined by ';') and no figures."""
    only = comparison.only.assign(present_in=comparison.only["present_in"].map(";".join),
                                  missing_in=comparison.only["missing_in"].map(";".join))
    table = pd.concat([comparison.changes.assign(present_in="", missing_in=""), only], ignore_index=True)
    return table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
