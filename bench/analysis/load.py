"""A results folder as tidy frames for the analysis, read through bench.results.ResultsFolder
(the one reader): the runs with their primary metric, the plan they belong to, and the
environment they were measured in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.fusefs.units import GIB, parse_size
from bench.records import Manifest
from bench.results import ResultsFolder
from bench.scenario import (
    Scenario,
    ScenarioError,
    cell_key,
    default_baseline,
    describe_target,
    parse_scenario,
)
from bench.transport import DEV, UNKNOWN, URING
from bench.vocabulary import FIO, METADATA_ENGINES, OPENS, PATTERNS, PROGRAM

LARGE_BS = 64 << 10
# A fio workload over this many files is about small files (opening and closing them), not blocks.
SMALL_FILES_FROM = 100
# The report sections, in the order they are shown; section_of() puts each run in one.
SECTIONS = ("block I/O", "small files", "mmap", "metadata", "open/close", "programs")
METRIC_UNITS = {"bw_mib_s": "MiB/s", "iops": "IOPS", "ops_s": "ops/s", "opens_s": "opens/s", "seconds": "s"}
# Metrics where less is better: a comparison of them is turned round, so that every ratio is a speed.
LOWER_IS_BETTER = frozenset({"seconds"})
PLAN_COLUMNS = ["cell", "target", "repetition"]


@dataclass
class Results:
    """A results folder as tidy frames."""

    folder: ResultsFolder
    manifest: Manifest | None
    runs: pd.DataFrame          # runs.csv, typed, plus `metric`, `unit`, `value` (primary metric)
    samples: pd.DataFrame       # samples.csv (empty frame when absent)
    fd_pressure: pd.DataFrame | None
    expected: pd.DataFrame      # cell, target, repetition the scenario asked for
    targets: list[str]          # scenario order
    target_types: dict[str, str]
    cells: list[str]            # scenario order
    baseline: str | None        # the target every other one is compared with
    threshold: float | None     # the scenario's threshold (None: no scenario to read it from)
    looks: int                  # times `repeat: auto` could check the comparisons (1 for a fixed repeat)
    windows: dict[str, float]   # fio cell -> the runtime it asked for (block I/O, small files, mmap)
    targets_described: dict[str, str]  # target -> what it is, its settings and the transport it ran over, in words
    transports: dict[str, str]  # FUSE target -> the transport its runs used (`dev`, `uring`, `unknown`, `mixed`)

    @property
    def path(self) -> Path:
        """The folder's path."""
        return self.folder.path


def load(results_dir: Path) -> Results:
    """Read a results folder; raise InputError when `results_dir` is not one."""
    folder = ResultsFolder(Path(results_dir))
    manifest = folder.manifest()
    runs = with_primary_metric(folder.runs())
    scenario = _scenario(folder)
    targets, target_types, cells, expected = _plan(scenario, manifest, runs)
    samples = folder.samples()
    baseline = scenario.baseline_target() if scenario else (default_baseline(targets, target_types) if targets else None)
    fio_cells = [c for c in scenario.cells() if c.family == FIO and c.ioengine not in METADATA_ENGINES] \
        if scenario else []
    used = transports(runs)
    return Results(
        folder=folder,
        manifest=manifest,
        runs=runs,
        samples=pd.DataFrame() if samples is None else samples,
        fd_pressure=folder.fd_pressure(),
        expected=expected,
        targets=targets,
        target_types=target_types,
        cells=cells,
        baseline=baseline,
        threshold=scenario.threshold if scenario else None,
        looks=manifest.auto.looks if manifest and manifest.auto else 1,
        windows={cell_key(c): c.runtime for c in fio_cells},
        targets_described=_described(scenario, used),
        transports={target: kind for target, (kind, _) in used.items()},
    )


MIXED_TRANSPORT = "mixed"
TRANSPORT_WORDS = {DEV: "/dev/fuse", URING: "FUSE over io_uring", UNKNOWN: "unknown"}


def transports(runs: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """FUSE target -> (the transport its ok runs used: one of runs.csv's values, or `mixed` when
    they disagree; that in words, with how many runs used each when they disagree)."""
    if "transport" not in runs:
        return {}
    used = runs[(runs["status"] == "ok") & runs["transport"].notna()]
    found = {}
    for target, values in used.groupby("target", sort=False)["transport"]:
        counts = values.value_counts()
        if len(counts) == 1:
            found[target] = (counts.index[0], TRANSPORT_WORDS.get(counts.index[0], counts.index[0]))
        else:
            found[target] = (MIXED_TRANSPORT, "runs disagree: " + ", ".join(
                f"{TRANSPORT_WORDS.get(kind, kind)} in {n}" for kind, n in counts.items()))
    return found


def _described(scenario: Scenario | None, used: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Each target in words: what it is, and the transport its runs went through (`used`, as
    transports() gives it)."""
    if scenario is None:
        return {}
    return {t.name: describe_target(t) + (f"; transport as run: {used[t.name][1]}" if t.name in used else "")
            for t in scenario.targets}


def with_primary_metric(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with `section`, `metric`, `unit` and `value`: what each run is, and its primary figure."""
    runs = runs.copy()
    runs["cell"] = runs["cell"].fillna(runs["workload"])
    family = runs["family"] if "family" in runs else pd.Series(pd.NA, index=runs.index)
    runs["section"] = pd.Series([section_of(f, engine, n) for f, engine, n in
                                 zip(family, runs["ioengine"], runs["nrfiles"])], index=runs.index, dtype="string")
    metric = [primary_metric(section, rw, bs) for section, rw, bs in zip(runs["section"], runs["rw"], runs["bs"])]
    runs["metric"] = pd.Series(metric, index=runs.index, dtype="string")
    runs["unit"] = runs["metric"].map(METRIC_UNITS)
    runs["value"] = pd.Series(np.nan, index=runs.index, dtype="float64")
    for name in METRIC_UNITS:
        runs["value"] = runs["value"].where(runs["metric"] != name, metric_value(runs, name))
    return runs


def metric_value(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's figure in one of the METRIC_UNITS metrics (NaN where the run has none)."""
    column = _METRIC_COLUMNS[metric]
    return directions_sum(runs, column) if metric in _FIO_METRICS else numeric(runs, column)


# The runs.csv figure of each metric; fio's (_FIO_METRICS) are read_<figure> + write_<figure>.
_METRIC_COLUMNS = {"bw_mib_s": "bw_mib_s", "iops": "iops", "ops_s": "iops", "opens_s": "ops_per_s",
                   "seconds": "duration_s"}
_FIO_METRICS = frozenset({"bw_mib_s", "iops", "ops_s"})


def section_of(family: Any, ioengine: Any, nrfiles: Any) -> str:
    """The report section of a run (folders of format 1 have no family: all fio)."""
    family, ioengine = (None if pd.isna(value) else value for value in (family, ioengine))
    if family == OPENS:
        return "open/close"
    if family == PROGRAM:
        return "programs"
    if ioengine in METADATA_ENGINES:
        return "metadata"
    if ioengine == "mmap":
        return "mmap"
    if pd.notna(nrfiles) and int(nrfiles) >= SMALL_FILES_FROM:
        return "small files"
    return "block I/O"


def primary_metric(section: str, rw: Any, bs: Any) -> str:
    """The figure a run is judged by: seconds for a program, opens/s for an open/close loop,
    operations/s for a metadata engine; for I/O, 'bw_mib_s' for sequential patterns or blocks
    of 64k and more, else 'iops'."""
    if section in _SECTION_METRICS:
        return _SECTION_METRICS[section]
    try:
        size = parse_size(str(bs)) if pd.notna(bs) else 0
    except ValueError:
        size = 0
    pattern = PATTERNS.get(str(rw)) if pd.notna(rw) else None
    if (pattern is not None and pattern.sequential) or size >= LARGE_BS:
        return "bw_mib_s"
    return "iops"


_SECTION_METRICS = {"programs": "seconds", "open/close": "opens_s", "metadata": "ops_s"}


def numeric(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as floats (NaN where empty); all NaN when the frame lacks it."""
    if name in frame:
        return pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return pd.Series(np.nan, index=frame.index, dtype="float64")


def directions_sum(frame: pd.DataFrame, metric: str) -> pd.Series:
    """read_<metric> + write_<metric>; NaN only when neither direction has a value."""
    read, write = numeric(frame, f"read_{metric}"), numeric(frame, f"write_{metric}")
    return read.fillna(0.0).add(write.fillna(0.0)).where(read.notna() | write.notna())


def _scenario(folder: ResultsFolder) -> Scenario | None:
    try:
        text = folder.scenario_text()
        return None if text is None else parse_scenario(text, str(folder.path / "scenario.yaml"))
    except ScenarioError:
        return None  # a report still works from runs.csv; the expected-runs check is skipped


def _plan(scenario: Scenario | None, manifest: Manifest | None,
          runs: pd.DataFrame) -> tuple[list[str], dict[str, str], list[str], pd.DataFrame]:
    """Targets, their types, cells (scenario order) and the expected (cell, target, repetition) rows."""
    present_targets = list(dict.fromkeys(runs["target"].dropna()))
    present_cells = list(dict.fromkeys(runs["cell"].dropna()))
    types = dict(zip(runs["target"].dropna(), runs["target_type"].fillna("")))
    if scenario is not None:
        cells = [cell_key(c) for c in scenario.cells()]
        targets = [t.name for t in scenario.targets]
        types.update({t.name: t.type for t in scenario.targets})
        repeat = manifest.repeat if manifest else scenario.repeat
        if repeat == "auto":  # no manifest to say how many were started: what ran is what was asked
            expected = runs.loc[:, PLAN_COLUMNS].dropna().reset_index(drop=True)
        else:
            expected = pd.DataFrame([(c, t, r) for c in cells for t in targets for r in range(1, repeat + 1)],
                                    columns=PLAN_COLUMNS)
    else:
        cells, targets = [], []
        expected = runs.loc[:, PLAN_COLUMNS].dropna().reset_index(drop=True)
    if manifest is not None and manifest.plan:
        # The runner's plan is the truth: it knows --repeat and skipped targets.
        expected = pd.DataFrame([entry.model_dump() for entry in manifest.plan], columns=PLAN_COLUMNS)
        cells = list(dict.fromkeys([*cells, *expected["cell"]]))
        targets = list(dict.fromkeys([*targets, *expected["target"]]))
    extra_targets = [t for t in present_targets if t not in targets]
    extra_cells = [c for c in present_cells if c not in cells]
    return targets + extra_targets, types, cells + extra_cells, expected


def environment(results: Results) -> dict[str, str]:
    """The facts a number needs next to it, in words: kernel, CPU, memory, fio, tool, scenario,
    and from a format-4 manifest the kernel command line, FUSE, CPU frequency and SMT,
    virtualization, THP and the work directory's file system and device ("" when unknown)."""
    manifest = results.manifest
    if manifest is None:
        return {"kernel": "unknown", "cpu": "unknown CPU", "memory": "memory unknown", "fio": "fio version unknown",
                "tool": "unknown", "scenario": "unknown", "started": "", "ended": "", "seed": ""}
    host = manifest.host
    memory, cores = host.get("memory_bytes"), host.get("cpu_cores")
    facts = {
        "kernel": " ".join(str(v) for v in (host.get("kernel"), host.get("arch")) if v) or "unknown",
        "cpu": f"{host.get('cpu_model') or 'unknown CPU'}" + (f" ({cores} cores)" if cores else ""),
        "memory": f"{memory / GIB:.1f} GiB" if isinstance(memory, (int, float)) else "memory unknown",
        "fio": manifest.fio_version or "fio version unknown",
        "tool": manifest.tool_version,
        "scenario": f"{manifest.scenario} ({manifest.scenario_hash})",
        "started": manifest.started_at,
        "ended": manifest.ended_at or "",
        "seed": str(manifest.seed),
    }
    return facts | _environment_facts(manifest.environment)


def _environment_facts(env: dict[str, Any]) -> dict[str, str]:
    """The short environment block of a format-4 manifest's `environment`."""
    if not env:
        return {}

    def get(*path: str) -> Any:
        node: Any = env
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    fuse = get("fuse", "config") or {}
    params = get("fuse", "parameters") or {}
    device = get("workdir", "device") or {}
    mount = get("workdir", "mount") or {}
    virtual = get("cpu", "virtualization") or {}
    tool = get("tool") or {}
    return {
        "cmdline": get("kernel", "cmdline") or "",
        "fuse": ", ".join(f"{key.removeprefix('CONFIG_')}={value}" for key, value in fuse.items())
                + (f"; module {', '.join(f'{k}={v}' for k, v in params.items())}" if params else ""),
        "cpu frequency": f"governor {get('cpu', 'governors')}, idle {get('cpu', 'cpuidle', 'driver')}, "
                         f"SMT {get('cpu', 'smt', 'control')}",
        "virtualization": ("a virtual machine" if virtual.get("hypervisor_flag") else "bare metal or unknown")
                          + "".join(f", {virtual[key]}" for key in ("hypervisor_type", "product_name")
                                    if virtual.get(key)),
        "THP": f"enabled {get('memory', 'transparent_hugepage', 'enabled')}, defrag "
               f"{get('memory', 'transparent_hugepage', 'defrag')}",
        "work directory": f"{get('workdir', 'path')}: {mount.get('fs_type')} on {mount.get('source')} "
                          f"({mount.get('options')})"
                          + (f"; device {device.get('name')} {device.get('driver') or ''}, scheduler "
                             f"{device.get('scheduler')}, rotational {device.get('rotational')}, nr_requests "
                             f"{device.get('nr_requests')}" if device else "; no block device"),
        "commit": f"{tool.get('commit')}{' (dirty)' if tool.get('dirty') else ''}" if tool.get("commit") else "",
    }


ENVIRONMENT_BLOCK = ("cmdline", "fuse", "cpu frequency", "virtualization", "THP", "work directory", "commit")
