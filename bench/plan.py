"""The plan of a run: cells x targets x repetitions in execution order, and what it will cost.

Within each repetition every cell runs on every target back to back. The target order is a
rotation of a seeded shuffle, so that over each block of len(targets) repetitions every
target runs once in every position: drift and position effects (cache, host load, ballooned
memory) spread over the targets instead of biasing one of them. The seed is in the manifest;
`--resume` rebuilds the same plan from it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.progress import format_duration
from bench.records import AutoRule
from bench.scenario import AUTO_MIN_REPEAT, AnyTarget, Cell, Scenario, cell_key

# Estimated overheads (seconds) for --dry-run and the ETA; measured on the 2-vCPU VM.
MOUNT_S = 1.0
DROP_CACHES_S = 1.5
FIO_START_S = 0.5
PREFILL_BYTES_PER_S = 300 << 20
FD_PRESSURE_STEP_S = 5.0  # fresh mount, open/hold/close, settle, unmount (rough; N-dependent)


@dataclass(frozen=True)
class PlannedRun:
    """One measured run (fio, an open/close loop or a program): a cell on a target in one repetition."""

    run_id: str
    cell: Cell
    cell_key: str
    target: AnyTarget
    repetition: int
    order: int


@dataclass(frozen=True)
class Plan:
    """Every run in execution order (with `auto`, the whole budget: the session stops early),
    and the target order each repetition uses."""

    seed: int
    repeat: int
    runs: list[PlannedRun]
    target_order: list[list[str]]
    auto: AutoRule | None = None

    def repetition(self, number: int) -> list[PlannedRun]:
        """The runs of one repetition, in order."""
        return [run for run in self.runs if run.repetition == number]


def run_id_of(key: str, target: str, repetition: int) -> str:
    """`<cell>--<target>--r<repetition>`: unique within a results folder and file-name safe."""
    return f"{key}--{target}--r{repetition}"


def make_plan(scenario: Scenario, repeat: int | str, seed: int) -> Plan:
    """cells x targets x repetitions; per repetition, every cell runs on all targets in a shuffled
    order. `repeat: "auto"` plans the whole budget (`max_repeat` repetitions)."""
    auto = None
    if repeat == "auto":
        auto = AutoRule(baseline=scenario.baseline_target(), threshold=scenario.threshold, min_repeat=AUTO_MIN_REPEAT,
                        max_repeat=scenario.max_repeat, max_time_s=scenario.max_time)
        repeat = scenario.max_repeat
    rng = random.Random(seed)
    cells = [(cell_key(cell), cell) for cell in scenario.cells()]
    runs: list[PlannedRun] = []
    orders: list[list[str]] = []
    base = list(scenario.targets)
    for repetition in range(1, repeat + 1):
        # Rotations of a shuffled order: over each block of len(targets) repetitions every
        # target runs once in every position. A first run after the previous cell is slower
        # on this VM (cold buffered reads: 0.55 against 2.5-3.3 GB/s), and a plain shuffle put
        # the same target first in all 3 repetitions of a quick run.
        shift = (repetition - 1) % len(base)
        if shift == 0:
            rng.shuffle(base)
        targets = base[shift:] + base[:shift]
        orders.append([target.name for target in targets])
        for key, cell in cells:
            for target in targets:
                runs.append(
                    PlannedRun(run_id_of(key, target.name, repetition), cell, key, target, repetition, len(runs))
                )
    return Plan(seed, repeat, runs, orders, auto)


def run_estimate_s(run: PlannedRun) -> float:
    """Expected wall time of one run: its own time (twice when warm), the start, the cache drop."""
    start = FIO_START_S * (2 if run.cell.cache == "warm" else 1)
    return run.cell.estimate_s() + start + (DROP_CACHES_S if run.cell.cache == "cold" else 0.0)


def estimate_s(plan: Plan, runs: list[PlannedRun] | None = None) -> float:
    """Expected wall time of `runs` (default: the whole plan) including mounts and prefill."""
    runs = plan.runs if runs is None else runs
    mounts = {run.target.name for run in runs if run.target.type != "native"}
    prefill = {run.cell_key: getattr(run.cell, "size", 0) for run in runs}
    return sum(map(run_estimate_s, runs)) + MOUNT_S * len(mounts) + sum(prefill.values()) / PREFILL_BYTES_PER_S


def fd_pressure_steps(scenario: Scenario) -> int:
    """Number of fd-pressure steps (targets x open_files x release), each on a fresh mount."""
    plan = scenario.fd_pressure
    return len(plan.steps()) if plan else 0


def describe_plan(plan: Plan, scenario: Scenario, commands: Sequence[str] = ()) -> list[str]:
    """The lines --dry-run prints: totals (with `auto`, the budget), `commands` (what it starts as
    root, for the reader to see first), target order per repetition, every run (with `auto`,
    those of the first repetitions)."""
    cells = {run.cell_key for run in plan.runs}
    steps = fd_pressure_steps(scenario)
    extra = steps * FD_PRESSURE_STEP_S
    auto = plan.auto
    shown = plan.runs if auto is None else [run for run in plan.runs if run.repetition <= auto.min_repeat]
    if auto is None:
        head = f"{plan.repeat} repetitions = {len(plan.runs)} runs"
        duration = f"estimated duration: {format_duration(estimate_s(plan) + extra)}"
    else:
        head = (f"{auto.min_repeat} to {auto.max_repeat} repetitions (repeat: auto) = {len(shown)} to "
                f"{len(plan.runs)} runs, until every comparison with {auto.baseline} is decided at a "
                f"{auto.threshold:.0%} threshold")
        most = estimate_s(plan) if auto.max_time_s is None else min(estimate_s(plan), auto.max_time_s)
        duration = (f"estimated duration: {format_duration(estimate_s(plan, shown) + extra)} to "
                    f"{format_duration(most + extra)}"
                    + (f" (max_time {format_duration(auto.max_time_s)})" if auto.max_time_s is not None else ""))
    lines = [
        f"scenario {scenario.name}: {len(cells)} cells x {len(scenario.targets)} targets x {head}, seed {plan.seed}"
        + (f", then {steps} fd-pressure steps" if steps else ""),
        f"{duration} (runtimes, plus per-run start and cache drop, mounts, prefill"
        + (", about 5s per fd-pressure step)" if steps else ")"),
        *commands,
    ]
    for repetition, order in enumerate(plan.target_order, 1):
        lines.append(f"repetition {repetition}: targets in order {', '.join(order)}")
    width = len(str(len(plan.runs)))
    for run in shown:
        lines.append(
            f"  {run.order + 1:>{width}}. {run.run_id}  ({run.cell.describe()})"
        )
    if len(shown) < len(plan.runs):
        lines.append(f"  ... then repetitions {auto.min_repeat + 1} to {auto.max_repeat} in the same way, one at a "
                     "time, while a comparison is undecided")
    return lines
