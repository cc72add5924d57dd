"""Results folder -> tidy pandas frames -> statistics; every summary is derived here, never stored.

Statistics used (docs in the report's "Method" section say the same):
- Each cell belongs to one report section (block I/O, small files, mmap, metadata, open/close,
  programs) and has one primary metric: bandwidth (MiB/s) for sequential patterns or bs >= 64k,
  IOPS for random small-block patterns (read + write summed, so mixed patterns have one
  figure), operations/s for metadata engines, opens/s for open/close loops, seconds for programs.
- Per cell x target: n, median, mean, stdev, CoV, min, max, and a distribution-free interval
  of the MEDIAN from order statistics, with its exact coverage (the narrowest reaching 95%;
  below n = 6 only [min, max], which covers 75% at n = 3: the report prints that level).
- Comparison with the baseline (and passthrough with plain): ratio of geometric means (target /
  baseline; baseline / target for seconds, so above 1 is always faster) with a 95% Welch
  t-interval on log values. Verdict against `threshold`: faster or slower when the whole
  interval lies beyond 1 +- threshold, equivalent when it lies within (two one-sided tests at
  2.5% each), else undecided. `repeat: auto` adds repetitions until nothing is undecided.
- A run more than 3 robust standard deviations (1.4826 MAD) from its cell's median is marked
  an outlier; it stays in the statistics.
- Latency percentiles come from fio json+ clat bins summed over repetitions and jobs.
- CPU efficiency pools the runs: sum of CPU seconds / sum of GiB (or of 1,000 I/Os).
- fd pressure: kernel memory (and slab objects) per open file is the ordinary least-squares
  slope against the files opened, per configuration over its ok steps, with r2 and, from 3
  points, a 95% t-interval of the slope (n - 2 degrees of freedom).

Modules: `load` (the folder as frames), `statistics`, `metrics` (what is derived), `fdmemory`
(fd pressure at scale: kernel memory per open file as slopes, the figures to quote),
`findings` (what the reader must be told), `compare` (other folders against a base one), `sweeps` (swept workloads as curves),
`timeline` (representative runs over time, from fio's logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.analysis.fdmemory import fd_figures, fd_memory, fd_releases
from bench.analysis.findings import Finding, count_by_kind, findings_of
from bench.analysis.load import SECTIONS, Results, environment, load, primary_metric
from bench.analysis.metrics import (
    CPU_PARTS,
    SECONDARY_METRICS,
    cpu_efficiency,
    device_traffic,
    fd_config_label,
    fd_limits,
    fd_steps,
    first_of_type,
    in_order,
    latency_percentiles,
    outliers,
    passthrough_verdicts,
    request_counts,
    requests_per_op,
    secondary,
    summary,
    usable_runs,
    work_done,
)
from bench.analysis.statistics import Settings
from bench.analysis.sweeps import sweeps_of
from bench.analysis.timeline import representative_runs, throughput_over_time

__all__ = [
    "CPU_PARTS", "SECONDARY_METRICS", "SECTIONS", "Analysis", "Finding", "Results", "Settings", "analyse", "count_by_kind",
    "environment", "fd_config_label", "in_order", "load", "primary_metric",
]


@dataclass
class Analysis:
    """Everything a report shows, derived from one Results."""

    results: Results
    settings: Settings
    summary: pd.DataFrame       # cell x target: stats of the primary metric and speedups
    secondary: pd.DataFrame     # cell x target x metric: stats of SECONDARY_METRICS
    cpu: pd.DataFrame           # cell x target: CPU seconds per GiB and per 1,000 I/Os by part
    latency: pd.DataFrame       # cell x target x direction x percentile -> latency_us
    requests: pd.DataFrame      # cell x target (FUSE targets): median FUSE requests per run
    per_op: pd.DataFrame        # cell x target x opcode (FUSE targets): median requests per run, op, file, MiB
    work: pd.DataFrame          # cell x target: median operations, files, MiB per run; backing opens per op
    disk: pd.DataFrame          # cell x target: median MiB fio moved and the block device read and wrote
    verdicts: pd.DataFrame      # per section: cells where passthrough is faster, unchanged, slower than plain
    fd_steps: pd.DataFrame      # fd-pressure steps that were measured (status ok), with `config`
    fd_limits: pd.DataFrame     # per fd-pressure configuration: first N that failed, and how
    fd_memory: pd.DataFrame     # per fd-pressure configuration x quantity: slope per 1,000 files opened (fdmemory)
    fd_figures: pd.DataFrame    # per fd-pressure configuration: the figures a reader would quote
    fd_releases: pd.DataFrame   # per fd-pressure configuration x release method: its time at the largest N
    sweeps: pd.DataFrame        # swept workloads: curve point (workload, panel, x) x target -> stats of its metric
    sweep_runs: pd.DataFrame    # every good run at its curve point, with its outlier mark
    timeline: pd.DataFrame      # representative fio runs: primary metric over time from fio's logs (timeline.COLUMNS)
    findings: list[Finding] = field(default_factory=list)

    @property
    def baseline(self) -> str | None:
        """The target every other one is compared with (the scenario's `baseline`, else native)."""
        return self.results.baseline

    @property
    def plain(self) -> str | None:
        """The plain-FUSE target passthrough is compared with."""
        return first_of_type(self.results, "fuse")


def default_settings(results: Results) -> Settings:
    """The scenario's threshold, and as many looks as `repeat: auto` could take."""
    return Settings(threshold=results.threshold or Settings.threshold, looks=results.looks)


def comparisons(results: Results, settings: Settings | None = None) -> pd.DataFrame:
    """The summary alone (cell x target statistics and comparisons): what `repeat: auto` judges."""
    results.runs["outlier"] = outliers(results.runs)
    used = usable_runs(results.runs)
    return summary(results, dict(iter(used.groupby(["cell", "target"], sort=False))), settings or default_settings(results))


def analyse(results: Results, settings: Settings | None = None) -> Analysis:
    """All statistics and findings of one results folder (by default with the scenario's threshold)."""
    settings = settings or default_settings(results)
    summary_frame = comparisons(results, settings)
    used = usable_runs(results.runs)
    groups = dict(iter(used.groupby(["cell", "target"], sort=False)))
    order = (results.cells, results.targets)
    latency, unreadable = latency_percentiles(results, used)
    sweep_points, sweep_runs = sweeps_of(results, groups, settings)
    timeline, damaged_logs = throughput_over_time(results, representative_runs(results.runs))
    analysis = Analysis(
        results=results,
        settings=settings,
        summary=summary_frame,
        secondary=secondary(groups, settings),
        cpu=cpu_efficiency(used, order),
        latency=in_order(latency, *order),
        requests=request_counts(used, order),
        per_op=requests_per_op(results, used, order),
        work=work_done(used, order),
        disk=device_traffic(used, order),
        verdicts=passthrough_verdicts(summary_frame),
        fd_steps=(steps := fd_steps(results.fd_pressure)),
        fd_limits=(limits := fd_limits(steps)),
        fd_memory=(memory := fd_memory(steps, settings.confidence)),
        fd_figures=fd_figures(steps, memory, limits),
        fd_releases=fd_releases(steps),
        sweeps=sweep_points,
        sweep_runs=sweep_runs,
        timeline=timeline,
    )
    analysis.findings = findings_of(analysis, unreadable, damaged_logs)
    return analysis
