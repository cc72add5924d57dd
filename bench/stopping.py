"""`repeat: auto`: whether another repetition is needed. After each repetition (from
`min_repeat` on) every comparison of a target with the baseline is judged from the results so
far: decided faster, slower or equivalent, or undecided. The run stops when none is
undecided, or when the budget (`max_repeat` repetitions, `max_time` seconds) is spent."""

from __future__ import annotations

from pathlib import Path

from bench.plan import AutoRepeat

UNDECIDED = "undecided"


def verdicts(folder: Path, auto: AutoRepeat) -> dict[str, str]:
    """`cell / target` -> the verdict of that target against the baseline, from the runs in
    `folder` so far (pairs without a good run on both sides are left out: nothing to decide)."""
    from bench.analysis import (  # the analysis stack is loaded only for auto runs
        Settings,
        analyse,
        load,
    )

    summary = analyse(load(folder), Settings(threshold=auto.threshold)).summary
    judged = summary[(summary["target"] != auto.baseline) & (summary["n"] > 0) & summary["vs_baseline_ratio"].notna()]
    return {f"{row.cell} / {row.target}": row.vs_baseline_verdict for row in judged.itertuples()}


def stop_reason(decided: dict[str, str], auto: AutoRepeat, repetitions: int, elapsed_s: float) -> str | None:
    """Why no repetition is to be added after `repetitions` (None: add one); `elapsed_s` is the
    time spent in repetitions so far. Nothing left to decide counts as decided."""
    if repetitions < auto.min_repeat:
        return None
    if all(verdict != UNDECIDED for verdict in decided.values()):
        return "decided"
    if repetitions >= auto.max_repeat:
        return "max_repeat"
    if auto.max_time_s is not None and elapsed_s >= auto.max_time_s:
        return "max_time"
    return None
