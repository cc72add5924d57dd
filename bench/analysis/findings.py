"""What a reader must be told next to the numbers: missing, failed, unavailable and
not-engaged runs, noisy cells, outlying runs, runs that measured a short window, direct I/O the
block device never saw, a target faster than native (with what was measured about it), too
few repetitions, fd-pressure steps that did not return to their baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from bench.analysis.load import Results, numeric
from bench.analysis.metrics import (
    OUTLIER_MADS,
    OUTLIER_SHARE,
    device_share,
    fd_config_label,
)
from bench.analysis.statistics import FASTER, runs_for_median_interval
from bench.records import FOLDER_COMPLETE, STATUS_FAILED, STATUS_OK, STATUS_UNAVAILABLE

if TYPE_CHECKING:
    from bench.analysis import Analysis


@dataclass(frozen=True)
class Finding:
    """One warning for the reader: what kind, where, and in words."""

    kind: str      # missing | failed | unavailable | not_engaged | noisy | outlier | short_window
                   # | served_from_cache | faster_than_native | few_repetitions | not_back_to_baseline | note
    cell: str
    target: str
    message: str


def missing_runs(results: Results) -> pd.DataFrame:
    """Expected (cell, target, repetition) rows with no runs.csv row at all."""
    present = results.runs.loc[:, ["cell", "target", "repetition"]].dropna().astype({"repetition": "int64"})
    expected = results.expected.astype({"repetition": "int64"})
    merged = expected.merge(present.drop_duplicates(), how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)


def findings_of(analysis: Analysis, unreadable: list[str], damaged_logs: list[str]) -> list[Finding]:
    """Every finding of an analysis; `unreadable`: runs whose fio output could not be read;
    `damaged_logs`: lines of fio's logs that could not be read."""
    results, settings = analysis.results, analysis.settings
    runs = results.runs
    findings: list[Finding] = []
    manifest = results.manifest
    if manifest is not None and manifest.status != FOLDER_COMPLETE:
        findings.append(Finding("note", "", "", f"the run's status is {manifest.status!r}: results are partial"))
    for note in manifest.notes if manifest else []:
        findings.append(Finding("note", "", "", note))
    skipped = manifest.skipped_targets if manifest else {}
    for target, why in skipped.items():
        findings.append(Finding("unavailable", "", target, f"target {target} was skipped: {why}"))
    for problem in unreadable:
        findings.append(Finding("note", "", "", f"{problem}; left out of the latency percentiles"))
    for problem in damaged_logs:
        findings.append(Finding("note", "", "", f"{problem}; left out of the chart over time"))
    for name, lines in results.folder.damaged.items():
        findings.append(Finding("note", "", "", f"{name}: rows cut short (a run killed while they were written) "
                                f"at line {', '.join(map(str, lines))} were left out; `fusebench run --resume` "
                                "redoes their runs"))

    missing = missing_runs(results)
    for (cell, target), frame in missing.groupby(["cell", "target"], sort=False):  # plan order
        reps = ", ".join(f"r{r}" for r in frame["repetition"])
        findings.append(Finding("missing", cell, target, f"{cell} / {target}: no result for {reps} (never run)"))

    reasons = runs["error"].where(runs["error"].notna() & (runs["error"] != ""), "no reason recorded")
    for row, reason in zip(runs[runs["status"] == STATUS_FAILED].itertuples(), reasons[runs["status"] == STATUS_FAILED]):
        findings.append(Finding("failed", row.cell, row.target, f"{row.run_id}: failed: {reason}"))
    # A target that cannot run here is one fact, not one per planned run.
    unavailable = runs["status"] == STATUS_UNAVAILABLE
    for target, why in reasons[unavailable].groupby(runs.loc[unavailable, "target"], sort=False):
        if str(target) not in skipped:
            findings.append(Finding("unavailable", "", str(target),
                                    f"target {target} was unavailable ({len(why)} runs): {'; '.join(why.unique())}"))

    not_engaged = runs[(runs["target_type"] == "passthrough") & (runs["passthrough_engaged"] == False)]  # noqa: E712
    for row in not_engaged.itertuples():
        findings.append(Finding("not_engaged", row.cell, row.target,
                                f"{row.run_id}: passthrough did not engage (the daemon served READ/WRITE); "
                                "left out of the statistics"))

    for cell, starts in _start_trees(runs).items():
        findings.append(Finding("note", cell, "", f"{cell}: the targets' runs did not start from the same files "
                                f"({starts}); compare them with care"))
    findings += _fd_findings(results.fd_pressure)
    summary = analysis.summary
    for row in summary[summary["cov"] > settings.noisy_cov].itertuples():
        findings.append(Finding("noisy", row.cell, row.target,
                                f"{row.cell} / {row.target}: noisy, CoV {row.cov:.1%} > {settings.noisy_cov:.0%}"))
    findings += _cache_findings(runs)
    findings += _window_findings(runs, results.windows)
    for row in runs[runs["outlier"]].itertuples():
        findings.append(Finding("outlier", row.cell, row.target, f"{row.run_id}: {row.value:.4g} {row.unit} lies more "
                                f"than {OUTLIER_MADS:g} robust deviations and {OUTLIER_SHARE:.0%} from its cell's median; kept "
                                "in the statistics"))
    baseline_type = results.target_types.get(results.baseline or "", "")
    if baseline_type == "native":
        beats = summary[(summary["target_type"] != "native") & (summary["vs_baseline_verdict"] == FASTER)]
        served = _served_from_cache(runs)
        for row in beats.itertuples():
            why = (f"its runs read {served[(row.cell, row.target)]:.0%} of what fio moved from the device: served "
                   "from a cache" if (row.cell, row.target) in served else
                   "nothing measured explains it (device bytes match what fio moved, or were not counted)")
            findings.append(Finding("faster_than_native", row.cell, row.target,
                                    f"{row.cell} / {row.target}: {row.vs_baseline_ratio:.2f}x native, decided "
                                    f"faster; {why}"))
    few = summary[(summary["n"] > 0) & (summary["ci_level"].isna() | (summary["ci_level"] < settings.confidence))]
    if not few.empty:
        findings.append(Finding("few_repetitions", "", "",
                                f"{len(few)} of {len(summary)} cell/target pairs have too few good runs for a "
                                f"{settings.confidence:.0%} interval of the median (lowest n = {int(few['n'].min())}; "
                                f"{runs_for_median_interval(settings.confidence)} are needed): their intervals are "
                                "[min, max] with the coverage printed"))
    return findings


# A direct-I/O cell whose device moved less than this share of fio's bytes was served from a cache.
DEVICE_SHORTFALL = 0.5
# A run that measured less than this share of the runtime it asked for measured a short window.
SHORT_WINDOW = 0.8


def _served_from_cache(runs: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(cell, target) -> the median device share of its direct-I/O runs, where it falls short."""
    medians = device_share(runs).groupby([runs["cell"], runs["target"]]).median().dropna()
    return {key: value for key, value in medians.items() if value < DEVICE_SHORTFALL}


def _cache_findings(runs: pd.DataFrame) -> list[Finding]:
    """Direct-I/O cells whose device did far less than fio moved: a cache answered, whatever the target."""
    return [Finding("served_from_cache", cell, target,
                    f"{cell} / {target}: its direct-I/O runs moved {share:.0%} of fio's bytes at the block device "
                    "(median): served from a cache (O_DIRECT not honoured below the target)")
            for (cell, target), share in _served_from_cache(runs).items()]


def _window_findings(runs: pd.DataFrame, windows: dict[str, float]) -> list[Finding]:
    """fio runs that measured under SHORT_WINDOW of the runtime they asked for."""
    asked = runs["cell"].map(windows)
    measured = numeric(runs, "fio_runtime_s")
    short = runs[(runs["status"] == STATUS_OK) & (measured < SHORT_WINDOW * asked)]
    return [Finding("short_window", cell, target,
                    f"{cell} / {target}: fio measured {measured[frame.index].median():.2g} s of the "
                    f"{windows[cell]:g} s asked ({len(frame)} runs): a cold buffered run ends when its data is "
                    "read once; give it more data, O_DIRECT or cache: warm to fill the window")
            for (cell, target), frame in short.groupby(["cell", "target"], sort=False)]


def _start_trees(runs: pd.DataFrame) -> dict[str, str]:
    """Cells whose good runs started from different file trees: cell -> the digests by target."""
    if "start_tree" not in runs:
        return {}
    good = runs[(runs["status"] == STATUS_OK) & runs["start_tree"].notna()]
    differing = {}
    for cell, frame in good.groupby("cell", sort=False):
        if frame["start_tree"].nunique() > 1:
            by_target = frame.groupby("target", sort=False)["start_tree"].agg(lambda d: "/".join(dict.fromkeys(d)))
            differing[str(cell)] = ", ".join(f"{target} {digests}" for target, digests in by_target.items())
    return differing


def _fd_findings(frame: pd.DataFrame | None) -> list[Finding]:
    if frame is None or frame.empty or "target" not in frame:
        return []
    findings = []
    policy = frame["fd_policy"] if "fd_policy" in frame else [None] * len(frame)
    for (_, step), pol in zip(frame.iterrows(), policy):
        config, n = fd_config_label(step["target"], pol), step.get("open_files")
        status = step.get("status")
        if pd.notna(status) and status != STATUS_OK:
            error = step.get("error") if pd.notna(step.get("error")) else "no reason recorded"
            kind = "unavailable" if status == STATUS_UNAVAILABLE else "failed"
            findings.append(Finding(kind, "fd_pressure", config, f"fd pressure {config} N={n}: {status}: {error}"))
        elif pd.notna(returned := step.get("returned_to_baseline")) and not returned:
            detail = step.get("baseline_detail") if pd.notna(step.get("baseline_detail")) else ""
            findings.append(Finding("not_back_to_baseline", "fd_pressure", config,
                                    f"fd pressure {config} N={n}: fds did not return to baseline after close"
                                    + (f" ({detail})" if detail else "")))
    return findings


def count_by_kind(findings: list[Finding]) -> dict[str, int]:
    """How many findings of each kind (for report headers)."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return counts
