"""Results folder -> tidy pandas frames -> statistics; every summary is derived here, never stored.

Statistics used (docs in the report's "Method" section say the same):
- Primary metric per cell: bandwidth (MiB/s) for sequential patterns or bs >= 64k, IOPS for
  random small-block patterns; read + write summed, so mixed patterns have one figure.
- Per cell x target: n, median, mean, stdev, CoV, min, max and a 95% percentile-bootstrap CI
  of the MEDIAN (seeded, so reports are reproducible).
- Speedup: ratio of medians (target / baseline) with a percentile-bootstrap CI, each side
  resampled independently. Significant only when Welch's t-test gives p < alpha AND the
  ratio is at least `threshold` away from 1. (Welch rather than Mann-Whitney U: with the
  usual 3 repetitions per side Mann-Whitney cannot go below p = 0.1.)
- Latency percentiles come from fio json+ clat bins summed over repetitions and jobs.
- CPU efficiency pools the runs: sum of CPU seconds / sum of GiB (or of 1,000 I/Os).
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.errors import InputError
from bench.results import FD_PRESSURE, FIO_DIR, MANIFEST, RUNS, SAMPLES, SCENARIO
from bench.scenario import ScenarioError, cell_key, parse_scenario
from bench.fusefs.units import parse_size
from bench.vocabulary import PATTERNS

GIB = float(1 << 30)
LARGE_BS = 64 << 10
LATENCY_PERCENTILES = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99)
CPU_PARTS = ("fio_user_s", "fio_sys_s", "daemon_user_s", "daemon_sys_s")
# Secondary per-run metrics summarised next to the primary one.
SECONDARY_METRICS = (
    "read_clat_p50_us", "read_clat_p99_us", "write_clat_p50_us", "write_clat_p99_us",
    "daemon_fds_max", "daemon_rss_max_kib", "fuse_other_requests",
)
METRIC_UNITS = {"bw_mib_s": "MiB/s", "iops": "IOPS"}


@dataclass(frozen=True)
class Settings:
    """Knobs of the statistics; the defaults are what reports use."""

    threshold: float = 0.05   # practical significance: |ratio - 1| must reach this
    alpha: float = 0.05       # Welch's t-test level
    noisy_cov: float = 0.05   # CoV above this flags a cell x target as noisy
    confidence: float = 0.95
    resamples: int = 4000
    seed: int = 1


@dataclass(frozen=True)
class Finding:
    """One warning for the reader: what kind, where, and in words."""

    kind: str      # missing | failed | unavailable | not_engaged | noisy | cache_artifact | few_repetitions
                   # | not_back_to_baseline | note
    cell: str
    target: str
    message: str


@dataclass
class Results:
    """A results folder as tidy frames."""

    path: Path
    manifest: dict[str, Any]
    runs: pd.DataFrame          # runs.csv, typed, plus `metric`, `unit`, `value` (primary metric)
    samples: pd.DataFrame       # samples.csv (empty frame when absent)
    fd_pressure: pd.DataFrame | None
    expected: pd.DataFrame      # cell, target, repetition the scenario asked for
    targets: list[str]          # scenario order
    target_types: dict[str, str]
    cells: list[str]            # scenario order


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
    fd_steps: pd.DataFrame      # fd-pressure steps that were measured (status ok), with `config`
    fd_limits: pd.DataFrame     # per fd-pressure configuration: first N that failed, and how
    findings: list[Finding] = field(default_factory=list)

    @property
    def native(self) -> str | None:
        """The target every other one is compared with."""
        return _first_of_type(self.results, "native")

    @property
    def plain(self) -> str | None:
        """The plain-FUSE target passthrough is compared with."""
        return _first_of_type(self.results, "fuse")


# ---------------------------------------------------------------- loading


def load(results_dir: Path) -> Results:
    """Read a results folder; raise InputError when `results_dir` is not one."""
    path = Path(results_dir)
    if not path.is_dir():
        raise InputError(f"{path} is not a directory; give a results folder made by `fusebench run`")
    if not (path / MANIFEST).is_file() and not (path / RUNS).is_file():
        raise InputError(f"{path} is not a results folder: it has neither {MANIFEST} nor {RUNS}")
    manifest = _load_manifest(path / MANIFEST)
    runs = _load_runs(path / RUNS)
    scenario = _load_scenario(path / SCENARIO)
    targets, target_types, cells, expected = _plan(scenario, manifest, runs)
    return Results(
        path=path,
        manifest=manifest,
        runs=runs,
        samples=_read_csv(path / SAMPLES),
        fd_pressure=_read_csv(path / FD_PRESSURE) if (path / FD_PRESSURE).is_file() else None,
        expected=expected,
        targets=targets,
        target_types=target_types,
        cells=cells,
    )


def _load_manifest(path: Path) -> dict[str, Any]:
    # Read as plain JSON, not bench.results.Manifest: a report must work on folders written by
    # older or newer versions, and on interrupted runs whose manifest lacks the end fields.
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the manifest is not a JSON object")
    return data


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV file: {exc}") from None


def _as_bool(series: pd.Series) -> pd.Series:
    mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
    return series.map(lambda v: mapping.get(str(v).strip().lower()) if pd.notna(v) else None)


def _load_runs(path: Path) -> pd.DataFrame:
    runs = _read_csv(path)
    if runs.empty:
        runs = pd.DataFrame(columns=["run_id", "cell", "workload", "target", "target_type", "repetition", "status"])
    for column in ("run_id", "cell", "workload", "target", "target_type", "status", "error", "rw", "bs"):
        if column not in runs:
            runs[column] = pd.NA
    runs["cell"] = runs["cell"].fillna(runs["workload"]).astype("string")
    for column in ("run_id", "workload", "target", "target_type", "status", "error", "rw", "bs"):
        runs[column] = runs[column].astype("string")
    runs["status"] = runs["status"].fillna("ok")
    runs["repetition"] = pd.to_numeric(runs.get("repetition"), errors="coerce").astype("Int64")
    runs["passthrough_engaged"] = _as_bool(runs["passthrough_engaged"]) if "passthrough_engaged" in runs else None
    metric = [primary_metric(rw, bs) for rw, bs in zip(runs["rw"], runs["bs"])]
    runs["metric"] = pd.Series(metric, index=runs.index, dtype="string")
    runs["unit"] = runs["metric"].map(METRIC_UNITS)
    runs["value"] = _directions_sum(runs, "bw_mib_s").where(runs["metric"] == "bw_mib_s", _directions_sum(runs, "iops"))
    return runs


def primary_metric(rw: Any, bs: Any) -> str:
    """'bw_mib_s' for sequential patterns or blocks of 64k and more, else 'iops'."""
    try:
        size = parse_size(str(bs)) if pd.notna(bs) else 0
    except ValueError:
        size = 0
    pattern = PATTERNS.get(str(rw)) if pd.notna(rw) else None
    if (pattern is not None and pattern.sequential) or size >= LARGE_BS:
        return "bw_mib_s"
    return "iops"


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return pd.to_numeric(frame[name], errors="coerce")
    return pd.Series(np.nan, index=frame.index, dtype="float64")


def _directions_sum(frame: pd.DataFrame, metric: str) -> pd.Series:
    """read_<metric> + write_<metric>; NaN only when neither direction has a value."""
    read, write = _column(frame, f"read_{metric}"), _column(frame, f"write_{metric}")
    return read.fillna(0.0).add(write.fillna(0.0)).where(read.notna() | write.notna())


def _load_scenario(path: Path):
    if not path.is_file():
        return None
    try:
        return parse_scenario(path.read_text(), str(path))
    except ScenarioError:
        return None  # a report still works from runs.csv; the expected-runs check is skipped


def _plan(scenario, manifest: dict, runs: pd.DataFrame) -> tuple[list[str], dict[str, str], list[str], pd.DataFrame]:
    """Targets, their types, cells (scenario order) and the expected (cell, target, repetition) rows."""
    present_targets = list(dict.fromkeys(runs["target"].dropna()))
    present_cells = list(dict.fromkeys(runs["cell"].dropna()))
    types = dict(zip(runs["target"].dropna(), runs["target_type"].fillna("")))
    columns = ["cell", "target", "repetition"]
    plan = manifest.get("plan")
    if scenario is not None:
        cells = [cell_key(c) for c in scenario.cells()]
        targets = [t.name for t in scenario.targets]
        types.update({t.name: t.type for t in scenario.targets})
        repeat = int(manifest.get("repeat") or scenario.repeat)
        expected = pd.DataFrame([(c, t, r) for c in cells for t in targets for r in range(1, repeat + 1)], columns=columns)
    else:
        cells, targets = [], []
        expected = runs.loc[:, columns].dropna().reset_index(drop=True)
    if isinstance(plan, list) and plan and all(isinstance(p, dict) and set(columns) <= set(p) for p in plan):
        # The runner's plan is the truth: it knows --repeat and skipped targets.
        expected = pd.DataFrame(plan, columns=columns)
        cells = list(dict.fromkeys([*cells, *expected["cell"]]))
        targets = list(dict.fromkeys([*targets, *expected["target"]]))
    extra_targets = [t for t in present_targets if t not in targets]
    extra_cells = [c for c in present_cells if c not in cells]
    return targets + extra_targets, types, cells + extra_cells, expected


# ---------------------------------------------------------------- statistics


def _rng(settings: Settings, *keys: str) -> np.random.Generator:
    # One stream per comparison, so adding a cell never changes another cell's CI.
    return np.random.default_rng([settings.seed, zlib.crc32("\0".join(keys).encode())])


def _boot_medians(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    return np.median(values[picks], axis=1)


def _bounds(settings: Settings) -> tuple[float, float]:
    tail = (1.0 - settings.confidence) / 2 * 100
    return tail, 100 - tail


def describe(values: np.ndarray, settings: Settings, *keys: str) -> dict[str, float]:
    """n, median, mean, stdev, CoV, min, max and the bootstrap CI of the median."""
    n = len(values)
    out = {"n": n, "median": np.nan, "mean": np.nan, "stdev": np.nan, "cov": np.nan,
           "ci_low": np.nan, "ci_high": np.nan, "min": np.nan, "max": np.nan}
    if n == 0:
        return out
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if n > 1 else np.nan
    out.update(median=float(np.median(values)), mean=mean, stdev=stdev,
               cov=stdev / mean if n > 1 and mean else np.nan,
               min=float(values.min()), max=float(values.max()))
    if n > 1:
        low, high = np.percentile(_boot_medians(values, _rng(settings, *keys), settings.resamples), _bounds(settings))
        out.update(ci_low=float(low), ci_high=float(high))
    return out


def compare(new: np.ndarray, base: np.ndarray, settings: Settings, *keys: str) -> dict[str, Any]:
    """Ratio of medians new/base with its bootstrap CI, Welch's p and the significance verdict."""
    out: dict[str, Any] = {"ratio": np.nan, "ratio_low": np.nan, "ratio_high": np.nan, "p": np.nan, "significant": False}
    if len(new) == 0 or len(base) == 0 or np.median(base) == 0:
        return out
    ratio = float(np.median(new) / np.median(base))
    out["ratio"] = ratio
    if len(new) < 2 or len(base) < 2:
        return out
    rng = _rng(settings, *keys)
    boot = _boot_medians(new, rng, settings.resamples) / _boot_medians(base, rng, settings.resamples)
    low, high = np.percentile(boot[np.isfinite(boot)], _bounds(settings))
    p = _welch_p(new, base)
    out.update(ratio_low=float(low), ratio_high=float(high), p=p,
               significant=bool(p < settings.alpha and abs(ratio - 1.0) >= settings.threshold))
    return out


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 and b.std() == 0:
        # No spread at all: scipy returns NaN; identical constants are "no difference".
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


# ---------------------------------------------------------------- analysis


def analyse(results: Results, settings: Settings = Settings()) -> Analysis:
    """All statistics and findings of one results folder."""
    used = _usable_runs(results.runs)
    groups = dict(iter(used.groupby(["cell", "target"], sort=False)))
    order = (results.cells, results.targets)
    analysis = Analysis(
        results=results,
        settings=settings,
        summary=_summary(results, groups, settings),
        secondary=_secondary(groups, settings),
        cpu=cpu_efficiency(used, order),
        latency=in_order(latency_percentiles(results.path, used), *order),
        requests=request_counts(used, order),
        fd_steps=(steps := fd_steps(results.fd_pressure)),
        fd_limits=fd_limits(steps),
    )
    analysis.findings = _findings(analysis)
    return analysis


def _usable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that count: status ok with a value, and passthrough runs only where it engaged."""
    not_engaged = (runs["target_type"] == "passthrough") & (runs["passthrough_engaged"] == False)  # noqa: E712
    return runs[(runs["status"] == "ok") & runs["value"].notna() & ~not_engaged.fillna(False)]


def _summary(results: Results, groups: dict, settings: Settings) -> pd.DataFrame:
    native = _first_of_type(results, "native")
    plain = _first_of_type(results, "fuse")
    runs = results.runs
    expected = results.expected.groupby(["cell", "target"]).size()
    present = runs.groupby(["cell", "target"]).size()
    failed = runs[runs["status"] == "failed"].groupby(["cell", "target"]).size()
    unavailable = runs[runs["status"] == "unavailable"].groupby(["cell", "target"]).size()
    rows = []
    for cell in results.cells:
        cell_runs = runs[runs["cell"] == cell]
        if cell_runs.empty:
            continue
        metric = cell_runs["metric"].iloc[0]
        workload = cell_runs["workload"].dropna().iloc[0] if cell_runs["workload"].notna().any() else cell
        for target in results.targets:
            key = (cell, target)
            if key not in expected.index and key not in present.index:
                continue
            values = _values(groups, cell, target)
            row = {"cell": cell, "workload": workload, "target": target,
                   "target_type": results.target_types.get(target, ""),
                   "metric": metric, "unit": METRIC_UNITS[metric],
                   "failed": int(failed.get(key, 0)), "unavailable": int(unavailable.get(key, 0)),
                   "missing": max(int(expected.get(key, 0)) - int(present.get(key, 0)), 0)}
            row["excluded"] = int(present.get(key, 0)) - row["failed"] - row["unavailable"] - len(values)
            row.update(describe(values, settings, cell, target))
            for label, base in (("native", native), ("plain", plain)):
                if base is None or target == base or (label == "plain" and row["target_type"] == "native"):
                    row.update({f"vs_{label}_{k}": v for k, v in _EMPTY_COMPARISON.items()})
                    continue
                verdict = compare(values, _values(groups, cell, base), settings, cell, target, base)
                row.update({f"vs_{label}_{k}": v for k, v in verdict.items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)


_EMPTY_COMPARISON = {"ratio": np.nan, "ratio_low": np.nan, "ratio_high": np.nan, "p": np.nan, "significant": False}
_SUMMARY_COLUMNS = (
    ["cell", "workload", "target", "target_type", "metric", "unit", "failed", "unavailable", "missing", "excluded",
     "n", "median", "mean", "stdev", "cov", "ci_low", "ci_high", "min", "max"]
    + [f"vs_{label}_{k}" for label in ("native", "plain") for k in _EMPTY_COMPARISON]
)


def _values(groups: dict, cell: str, target: str | None) -> np.ndarray:
    frame = groups.get((cell, target))
    return np.array([]) if frame is None else frame["value"].to_numpy(dtype=float)


def _first_of_type(results: Results, kind: str) -> str | None:
    return next((t for t in results.targets if results.target_types.get(t) == kind), None)


def _secondary(groups: dict, settings: Settings) -> pd.DataFrame:
    rows = []
    for (cell, target), frame in groups.items():
        for metric in SECONDARY_METRICS:
            values = _column(frame, metric).dropna().to_numpy(dtype=float)
            if len(values):
                rows.append({"cell": cell, "target": target, "metric": metric,
                             **describe(values, settings, cell, target, metric)})
    return pd.DataFrame(rows)


def in_order(frame: pd.DataFrame, cells: list[str], targets: list[str]) -> pd.DataFrame:
    """Rows sorted by cell, then target, in scenario order (runs are interleaved, so data order is not)."""
    cell_rank = {c: i for i, c in enumerate(cells)}
    target_rank = {t: i for i, t in enumerate(targets)}
    key = frame["cell"].map(cell_rank).fillna(len(cells)) * (len(targets) + 1) + frame["target"].map(target_rank).fillna(len(targets))
    return frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def cpu_efficiency(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """CPU seconds per GiB moved and per 1,000 I/Os, by process (fio, daemon) and user/sys."""
    runtime = _column(runs, "fio_runtime_s").fillna(_column(runs, "duration_s"))
    parts = pd.DataFrame({
        "cell": runs["cell"], "target": runs["target"],
        # fio's own percentages (of its runtime) are the fallback when the monitor has no figure.
        "fio_user_s": _column(runs, "fio_cpu_user_s").fillna(_column(runs, "fio_usr_cpu_pct") / 100 * runtime),
        "fio_sys_s": _column(runs, "fio_cpu_sys_s").fillna(_column(runs, "fio_sys_cpu_pct") / 100 * runtime),
        "daemon_user_s": _column(runs, "daemon_cpu_user_s").fillna(0.0),
        "daemon_sys_s": _column(runs, "daemon_cpu_sys_s").fillna(0.0),
        "gib": _directions_sum(runs, "io_bytes").fillna(_directions_sum(runs, "bw_mib_s") * runtime * (1 << 20)) / GIB,
        "kios": _directions_sum(runs, "iops") * runtime / 1000.0,
    })
    totals = parts.groupby(["cell", "target"], sort=False).sum(min_count=1).reset_index()
    if order is not None:
        totals = in_order(totals, *order)
    for part in CPU_PARTS:
        totals[f"{part}_per_gib"] = totals[part] / totals["gib"]
        totals[f"{part}_per_kio"] = totals[part] / totals["kios"]
    totals["total_s_per_gib"] = totals[list(CPU_PARTS)].sum(axis=1) / totals["gib"]
    totals["total_s_per_kio"] = totals[list(CPU_PARTS)].sum(axis=1) / totals["kios"]
    return totals


REQUEST_COLUMNS = ("fuse_read_requests", "fuse_write_requests", "fuse_other_requests")


def request_counts(runs: pd.DataFrame, order: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:
    """Median FUSE requests per run (read, write, other) for FUSE targets that counted them."""
    fuse = runs[runs["target_type"] != "native"]
    counts = pd.DataFrame({"cell": fuse["cell"], "target": fuse["target"], "target_type": fuse["target_type"],
                           **{column: _column(fuse, column) for column in REQUEST_COLUMNS}})
    counts = counts.dropna(subset=list(REQUEST_COLUMNS), how="all")
    counts = counts.groupby(["cell", "target", "target_type"], sort=False).median().reset_index()
    return in_order(counts, *order) if order is not None else counts


def fd_config_label(target: Any, policy: Any) -> str:
    """'target' or 'target/policy' for an fd-pressure configuration."""
    return f"{target}/{policy}" if pd.notna(policy) and str(policy) else str(target)


def fd_steps(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The measured fd-pressure steps (a failed or unavailable step has no figures), labelled by config."""
    if frame is None or frame.empty or not {"target", "open_files"} <= set(frame):
        return pd.DataFrame(columns=["config", "target", "open_files"])
    status = frame["status"].fillna("ok") if "status" in frame else pd.Series("ok", index=frame.index)
    steps = frame[status == "ok"]
    policy = steps["fd_policy"] if "fd_policy" in steps else pd.Series(pd.NA, index=steps.index)
    return steps.assign(config=[fd_config_label(t, p) for t, p in zip(steps["target"], policy)],
                        failed=_column(steps, "failed").fillna(0)).sort_values(["config", "open_files"], kind="stable")


def fd_limits(steps: pd.DataFrame) -> pd.DataFrame:
    """Per target/policy: the largest N that fully succeeded and the first N with failed > 0 (errno)."""
    columns = ["config", "daemon_nofile", "max_ok", "first_failed_n", "failed", "errno"]
    if steps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for config, steps in steps.groupby("config", sort=False):
        bad = steps[steps["failed"] > 0]
        good = steps[steps["failed"] == 0]
        first = bad.iloc[0] if not bad.empty else None
        rows.append({
            "config": config,
            "daemon_nofile": steps["daemon_nofile"].iloc[0] if "daemon_nofile" in steps else np.nan,
            "max_ok": good["open_files"].max() if not good.empty else np.nan,
            "first_failed_n": first["open_files"] if first is not None else np.nan,
            "failed": first["failed"] if first is not None else 0,
            "errno": str(first.get("errno", "")) if first is not None and pd.notna(first.get("errno")) else "",
        })
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- latency


def read_fio_json(path: Path) -> dict | None:
    """fio's JSON output, tolerating warnings printed before it; None when absent or unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except json.JSONDecodeError:
        return None


def clat_bins(fio: dict, direction: str) -> dict[int, int]:
    """clat_ns bins {ns: count} of one direction, summed over fio's jobs."""
    total: dict[int, int] = {}
    for job in fio.get("jobs", []):
        bins = job.get(direction, {}).get("clat_ns", {}).get("bins") or {}
        for ns, count in bins.items():
            total[int(ns)] = total.get(int(ns), 0) + int(count)
    return total


def percentiles_from_bins(bins: dict[int, int], percentiles=LATENCY_PERCENTILES) -> np.ndarray:
    """Latency (ns) at each percentile: the smallest bin whose cumulative count reaches p% of all."""
    if not bins:
        return np.full(len(percentiles), np.nan)
    keys = np.array(sorted(bins), dtype=float)
    cumulative = np.cumsum([bins[int(k)] for k in keys])
    wanted = np.asarray(percentiles) / 100.0 * cumulative[-1]
    return keys[np.minimum(np.searchsorted(cumulative, wanted, side="left"), len(keys) - 1)]


def latency_percentiles(results_dir: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell x target x direction, clat percentiles (us) of the bins summed over all its runs."""
    summed: dict[tuple[str, str, str], dict[int, int]] = {}
    for run_id, cell, target in zip(runs["run_id"], runs["cell"], runs["target"]):
        fio = read_fio_json(Path(results_dir) / FIO_DIR / f"{run_id}.json")
        if fio is None:
            continue
        for direction in ("read", "write"):
            bins = clat_bins(fio, direction)
            if bins:
                into = summed.setdefault((cell, target, direction), {})
                for ns, count in bins.items():
                    into[ns] = into.get(ns, 0) + count
    rows = []
    for (cell, target, direction), bins in summed.items():
        values = percentiles_from_bins(bins)
        count = sum(bins.values())
        rows.extend({"cell": cell, "target": target, "direction": direction, "percentile": p,
                     "latency_us": v / 1000.0, "ios": count} for p, v in zip(LATENCY_PERCENTILES, values))
    return pd.DataFrame(rows, columns=["cell", "target", "direction", "percentile", "latency_us", "ios"])


# ---------------------------------------------------------------- findings


def missing_runs(results: Results) -> pd.DataFrame:
    """Expected (cell, target, repetition) rows with no runs.csv row at all."""
    present = results.runs.loc[:, ["cell", "target", "repetition"]].dropna().astype({"repetition": "int64"})
    expected = results.expected.astype({"repetition": "int64"})
    merged = expected.merge(present.drop_duplicates(), how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)


def _findings(analysis: Analysis) -> list[Finding]:
    results, settings = analysis.results, analysis.settings
    runs = results.runs
    findings: list[Finding] = []
    status = str(results.manifest.get("status", "")).strip()
    if status and status not in ("complete", "ok"):
        findings.append(Finding("note", "", "", f"the run's status is {status!r}: results are partial"))
    for note in results.manifest.get("notes") or []:
        findings.append(Finding("note", "", "", str(note)))
    skipped = results.manifest.get("skipped_targets") or {}
    for target, why in (skipped.items() if isinstance(skipped, dict) else []):
        findings.append(Finding("unavailable", "", str(target), f"target {target} was skipped: {why}"))

    missing = missing_runs(results)
    for (cell, target), frame in missing.groupby(["cell", "target"], sort=False):  # plan order
        reps = ", ".join(f"r{r}" for r in frame["repetition"])
        findings.append(Finding("missing", cell, target, f"{cell} / {target}: no result for {reps} (never run)"))

    reasons = runs["error"].where(runs["error"].notna() & (runs["error"] != ""), "no reason recorded")
    for row, reason in zip(runs[runs["status"] == "failed"].itertuples(), reasons[runs["status"] == "failed"]):
        findings.append(Finding("failed", row.cell, row.target, f"{row.run_id}: failed: {reason}"))
    # A target that cannot run here is one fact, not one per planned run.
    unavailable = runs["status"] == "unavailable"
    for target, why in reasons[unavailable].groupby(runs.loc[unavailable, "target"], sort=False):
        if str(target) not in skipped:
            findings.append(Finding("unavailable", "", str(target),
                                    f"target {target} was unavailable ({len(why)} runs): {'; '.join(why.unique())}"))

    not_engaged = runs[(runs["target_type"] == "passthrough") & (runs["passthrough_engaged"] == False)]  # noqa: E712
    for row in not_engaged.itertuples():
        findings.append(Finding("not_engaged", row.cell, row.target,
                                f"{row.run_id}: passthrough did not engage (the daemon served READ/WRITE); "
                                "left out of the statistics"))

    findings += _fd_findings(results.fd_pressure)
    summary = analysis.summary
    for row in summary[summary["cov"] > settings.noisy_cov].itertuples():
        findings.append(Finding("noisy", row.cell, row.target,
                                f"{row.cell} / {row.target}: noisy, CoV {row.cov:.1%} > {settings.noisy_cov:.0%}"))
    beats = summary[(summary["target_type"] != "native") & summary["vs_native_significant"] & (summary["vs_native_ratio"] > 1)]
    direct_cells = set(runs.loc[runs["direct"] == True, "cell"]) if "direct" in runs else set()  # noqa: E712
    for row in beats.itertuples():
        why = ("no page cache with O_DIRECT: likely the requests reaching the disk differ (a daemon "
               "buffer on huge pages makes fewer, larger ones than fio's own buffer)"
               if row.cell in direct_cells else
               "likely a cache artifact (check cache state is the same for every target)")
        findings.append(Finding("cache_artifact", row.cell, row.target,
                                f"{row.cell} / {row.target}: {row.vs_native_ratio:.2f}x native, beyond the noise; {why}"))
    few = summary[(summary["n"] > 0) & (summary["n"] < 5)]
    if not few.empty:
        findings.append(Finding("few_repetitions", "", "",
                                f"{len(few)} of {len(summary)} cell/target pairs have fewer than 5 good runs "
                                f"(lowest n = {int(few['n'].min())}); treat differences as indicative"))
    return findings


def _fd_findings(frame: pd.DataFrame | None) -> list[Finding]:
    if frame is None or frame.empty or "target" not in frame:
        return []
    findings = []
    policy = frame["fd_policy"] if "fd_policy" in frame else [None] * len(frame)
    for (_, step), pol in zip(frame.iterrows(), policy):
        config, n = fd_config_label(step["target"], pol), step.get("open_files")
        status = step.get("status")
        if pd.notna(status) and status != "ok":
            error = step.get("error") if pd.notna(step.get("error")) else "no reason recorded"
            kind = "unavailable" if status == "unavailable" else "failed"
            findings.append(Finding(kind, "fd_pressure", config, f"fd pressure {config} N={n}: {status}: {error}"))
        elif str(step.get("returned_to_baseline")).strip().lower() == "false":
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


# ---------------------------------------------------------------- comparison of two folders


def compare_folders(a: Analysis, b: Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per matching cell x target, B relative to A; and the cell x target pairs present in one only."""
    settings = a.settings
    # A pair counts as present only with data: a planned but never-run pair is "only in" the other.
    with_data_a, with_data_b = a.summary[a.summary["n"] > 0], b.summary[b.summary["n"] > 0]
    keys_a = set(zip(with_data_a["cell"], with_data_a["target"]))
    keys_b = set(zip(with_data_b["cell"], with_data_b["target"]))
    groups_a = dict(iter(_usable_runs(a.results.runs).groupby(["cell", "target"], sort=False)))
    groups_b = dict(iter(_usable_runs(b.results.runs).groupby(["cell", "target"], sort=False)))
    rows = []
    for row in with_data_a.itertuples():
        key = (row.cell, row.target)
        if key not in keys_b:
            continue
        other = b.summary[(b.summary["cell"] == row.cell) & (b.summary["target"] == row.target)].iloc[0]
        if other["metric"] != row.metric:
            continue
        verdict = compare(_values(groups_b, *key), _values(groups_a, *key), settings, "compare", *key)
        rows.append({"cell": row.cell, "target": row.target, "metric": row.metric, "unit": row.unit,
                     "n_a": row.n, "median_a": row.median, "n_b": int(other["n"]), "median_b": other["median"],
                     **verdict})
    only = [{"cell": c, "target": t, "only_in": "A"} for c, t in sorted(keys_a - keys_b)]
    only += [{"cell": c, "target": t, "only_in": "B"} for c, t in sorted(keys_b - keys_a)]
    changes = pd.DataFrame(rows, columns=["cell", "target", "metric", "unit", "n_a", "median_a", "n_b", "median_b",
                                          *_EMPTY_COMPARISON])
    return changes, pd.DataFrame(only, columns=["cell", "target", "only_in"])


def environment(results: Results) -> dict[str, str]:
    """The facts a number needs next to it: kernel, CPU, fio, tool, scenario."""
    manifest = results.manifest
    host = manifest.get("host") or {}
    scenario = manifest.get("scenario") or {}
    if not isinstance(scenario, dict):
        scenario = {"name": str(scenario), "hash": manifest.get("scenario_hash")}
    memory = host.get("memory_bytes")
    cores = host.get("cpu_cores")
    return {
        "kernel": " ".join(str(v) for v in (host.get("kernel"), host.get("arch")) if v) or "unknown",
        "cpu": f"{host.get('cpu_model') or 'unknown CPU'}" + (f" ({cores} cores)" if cores else ""),
        "memory": f"{memory / GIB:.1f} GiB" if isinstance(memory, (int, float)) else "memory unknown",
        "fio": str(manifest.get("fio_version") or manifest.get("fio") or "fio version unknown"),
        "tool": str(manifest.get("tool_version") or manifest.get("version") or "unknown"),
        "scenario": " ".join(str(v) for v in (scenario.get("name"), f"({scenario['hash']})" if scenario.get("hash") else None) if v) or "unknown",
        "started": str(manifest.get("started") or manifest.get("started_at") or ""),
        "ended": str(manifest.get("ended") or manifest.get("ended_at") or ""),
        "seed": "" if manifest.get("seed") is None else str(manifest.get("seed")),
    }


def format_number(value: float) -> str:
    """A figure with the precision a reader needs: whole numbers from 100 up, else 2-3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}"
