"""`repeat: auto`: whether another repetition is needed. After each repetition (from
`min_repeat` on) every comparison of a target with the baseline is judged from the results so
far: decided faster, slower or equivalent, or undecided. Each judgement uses intervals at
1 - 5%/looks (Bonferroni over every check the budget allows), so a verdict reached at any
check keeps its 95% confidence. The run stops when none is undecided, or when the budget
(`max_repeat` repetitions, `max_time` seconds) is spent."""

from __future__ import annotations

from pathlib import Path

from bench.analysis.statistics import UNDECIDED
from bench.records import AutoRule


def judge(results) -> dict[str, str]:
    """`cell / target` -> the verdict of that target against the baseline in `results` (a
    bench.analysis.Results); pairs without a good run on both sides are left out."""
    from bench.analysis import (
        comparisons,  # the analysis stack is loaded only for auto runs
    )

    summary = comparisons(results)
    judged = summary[(summary["target"] != results.baseline) & (summary["n"] > 0)
                     & summary["vs_baseline_ratio"].notna()]
    return {f"{row.cell} / {row.target}": row.vs_baseline_verdict for row in judged.itertuples()}


def verdicts(folder: Path) -> dict[str, str]:
    """The verdicts of the results folder as it stands."""
    from bench.analysis import load

    return judge(load(folder))


def stop_reason(decided: dict[str, str], auto: AutoRule, repetitions: int, elapsed_s: float) -> str | None:
    """Why no repetition is to be added after `repetitions` (None: add one); `elapsed_s` is the
    time spent so far. Nothing left to decide counts as decided."""
    if repetitions < auto.min_repeat:
        return None
    if all(verdict != UNDECIDED for verdict in decided.values()):
        return "decided"
    if repetitions >= auto.max_repeat:
        return "max_repeat"
    if auto.max_time_s is not None and elapsed_s >= auto.max_time_s:
        return "max_time"
    return None
