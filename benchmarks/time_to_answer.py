"""How long a `repeat: auto` run took to answer its question: for each comparison with the
baseline, its final verdict, the repetitions it took to reach it (from which it never changed
again) and the wall time from the start of the run to the end of that repetition; then when
every comparison was decided, and why the run stopped.

Usage: python benchmarks/time_to_answer.py [RESULTS_FOLDER]
  Without a folder: the newest results/perf* folder (what `make perf` just wrote).
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.analysis import comparisons, load  # noqa: E402
from bench.analysis.load import Results  # noqa: E402
from bench.analysis.statistics import UNDECIDED  # noqa: E402
from bench.results import ResultsFolder  # noqa: E402
from bench.stopping import judge  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"


def newest_perf_folder() -> Path:
    """The results/perf* folder whose manifest started last."""
    folders = [path for path in RESULTS.glob("perf*") if (path / "manifest.json").is_file()]
    if not folders:
        sys.exit("no results/perf* folder: run `make perf` first, or name a folder")
    return max(folders, key=lambda path: ResultsFolder(path).manifest().started_at)


def up_to(results: Results, repetitions: int) -> Results:
    """The folder as it stood after `repetitions` repetitions."""
    runs = results.runs[results.runs["repetition"] <= repetitions].copy()
    expected = results.expected[results.expected["repetition"] <= repetitions]
    return dataclasses.replace(results, runs=runs, expected=expected)


def block_ends(results: Results) -> dict[int, float]:
    """Repetition -> seconds from the run's start to the end of that repetition's last run."""
    runs = results.runs.dropna(subset=["started_at"])
    start = datetime.fromisoformat(results.manifest.started_at)
    ends = {}
    for repetition, frame in runs.groupby("repetition"):
        finished = [datetime.fromisoformat(at) + timedelta(seconds=float(duration or 0))
                    for at, duration in zip(frame["started_at"], frame["duration_s"].fillna(0))]
        ends[int(repetition)] = (max(finished) - start).total_seconds()
    return ends


def main(folder: Path) -> int:
    results = load(folder)
    auto = results.manifest.auto
    repeats = int(results.runs["repetition"].max())
    first = min(auto.min_repeat, repeats) if auto else repeats
    history = {k: judge(up_to(results, k)) for k in range(first, repeats + 1)}
    summary = comparisons(results)
    ratios = {f"{row.cell} / {row.target}": row.vs_baseline_ratio for row in summary.itertuples()}
    ends = block_ends(results)
    print(f"{folder}: {repeats} repetitions" + (f", stopped: {auto.stopped} (threshold {auto.threshold:.0%}, "
                                                f"max_repeat {auto.max_repeat}, max_time {auto.max_time_s} s)"
                                                if auto else " (fixed)"))
    print(f"{'comparison with ' + results.baseline:38} {'verdict':11} {'ratio':>6} {'n':>3} {'decided by':>10}")
    for pair, verdict in history[repeats].items():
        # the first repetition from which the verdict never changed again
        settled = repeats if verdict == UNDECIDED else next(
            k for k in range(first, repeats + 1) if all(history[j].get(pair) == verdict for j in range(k, repeats + 1)))
        when = f"{ends.get(settled, float('nan')) / 60:.1f} min" if verdict != UNDECIDED else "-"
        print(f"{pair:38} {verdict:11} {ratios[pair]:6.3f} {settled:>3} {when:>10}")
    undecided = [pair for pair, verdict in history[repeats].items() if verdict == UNDECIDED]
    total = ends.get(repeats, float("nan")) / 60
    print(f"all decided after {repeats} repetitions, {total:.1f} min of wall time" if not undecided else
          f"{len(undecided)} undecided after {repeats} repetitions, {total:.1f} min: " + ", ".join(undecided))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else newest_perf_folder()))
