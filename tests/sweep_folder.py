"""A small results folder with sweeps, written as the runner writes one (the scenario's cells,
their keys and `sweep` columns), for the sweep tests of the analysis and the reports.

Native's bandwidth is 40 MiB/s x sqrt(iodepth) x numjobs x sqrt(bs / 4k); fuse reaches half of
it, passthrough 98%; the three repetitions are -1%, 0, +1% of that, except OUTLIER, twice it."""

from __future__ import annotations

import math
from pathlib import Path

from bench.records import (
    FioFigures,
    RequestTotals,
    RunInfo,
    RunRecord,
    WorkloadAsRun,
    WorkloadKind,
    sweep_text,
)
from bench.results import ResultsWriter
from bench.scenario import cell_key, parse_scenario

SCENARIO = """\
name: sweeps
repeat: 3
seed: 1
targets:
  - {name: native, type: native}
  - {name: fuse, type: fuse}
  - {name: passthrough, type: passthrough}
workloads:
  - {name: depth, rw: randread, bs: 4k, size: 16M, ioengine: libaio, direct: true, iodepth: [1, 4, 16, 64], numjobs: [1, 2]}
  - {name: blocks, rw: randread, bs: [1m, 4k, 64k], size: 16M, direct: true}
  - {name: jobs, rw: [read, write], bs: 1M, size: 16M, numjobs: [1, 2, 3]}
  - {name: single, rw: read, bs: 1M, size: 16M}
"""
SPEED = {"native": 1.0, "fuse": 0.5, "passthrough": 0.98}
OUTLIER = ("depth_iodepth-16_numjobs-1", "fuse", 3)


def native_mib_s(iodepth: int, numjobs: int, bs: int) -> float:
    """Native's bandwidth in a cell (before the spread of the repetitions)."""
    return 40.0 * math.sqrt(iodepth) * numjobs * math.sqrt(bs / 4096)


def sweep_folder(path: Path) -> Path:
    """Write the folder at `path` (every run ok; passthrough engaged) and return it."""
    scenario = parse_scenario(SCENARIO, "sweeps.yaml")
    writer = ResultsWriter.create(path)
    writer.write_scenario(SCENARIO)
    for cell in scenario.cells():
        key = cell_key(cell)
        direction = "write" if cell.rw == "write" else "read"
        for target in scenario.targets:
            for rep in (1, 2, 3):
                mib = native_mib_s(cell.iodepth, cell.numjobs, cell.bs) * SPEED[target.name] * (1 + (rep - 2) / 100)
                mib *= 2 if (key, target.name, rep) == OUTLIER else 1
                writer.append_run(RunRecord(
                    info=RunInfo(run_id=f"{key}--{target.name}--r{rep}", workload=cell.name, cell=key,
                                 sweep=sweep_text(cell.sweep), target=target.name, target_type=target.type,
                                 repetition=rep, duration_s=5.0, status="ok"),
                    workload=WorkloadAsRun.of(cell),
                    fio=FioFigures(**{f"{direction}_bw_mib_s": mib, f"{direction}_iops": mib * (1 << 20) / cell.bs},
                                   fio_runtime_s=5.0),
                    requests=RequestTotals(passthrough_engaged=True if target.type == "passthrough" else None),
                    kind=WorkloadKind(family="fio")))
    return path
