"""The planner: every run once, targets interleaved and rotated, seeded, with an estimate."""

from __future__ import annotations

from bench.plan import describe_plan, estimate_s, make_plan
from bench.scenario import cell_key, parse_scenario

PLAN_SCENARIO = parse_scenario("""\
name: tiny
repeat: 6
targets:
  - {name: a, type: native}
  - {name: b, type: fuse}
  - {name: c, type: passthrough}
  - {name: bind, type: external, command: [bindfs, -f, "{source}", "{mountpoint}"]}
workloads:
  - {name: seq, rw: read, bs: 1M, size: 8M, runtime: 2s}
  - {name: rand, rw: randread, bs: 4k, size: 8M, runtime: 1s, iodepth: [1, 8], ioengine: libaio, cache: warm}
""")


def test_every_cell_target_repetition_runs_exactly_once() -> None:
    plan = make_plan(PLAN_SCENARIO, repeat=6, seed=1)
    keys = [(run.cell_key, run.target.name, run.repetition) for run in plan.runs]
    cells = [cell_key(cell) for cell in PLAN_SCENARIO.cells()]
    expected = {(c, t.name, r) for c in cells for t in PLAN_SCENARIO.targets for r in range(1, 7)}
    assert len(keys) == len(expected) == 3 * 4 * 6
    assert set(keys) == expected
    assert len({run.run_id for run in plan.runs}) == len(keys)
    assert [run.order for run in plan.runs] == list(range(len(keys)))


def test_targets_are_interleaved_within_each_repetition() -> None:
    plan = make_plan(PLAN_SCENARIO, repeat=6, seed=1)
    targets = len(PLAN_SCENARIO.targets)
    # Repetitions run one after the other ...
    assert [run.repetition for run in plan.runs] == sorted(run.repetition for run in plan.runs)
    # ... and inside one, each cell runs on every target back to back, in that repetition's order.
    for start in range(0, len(plan.runs), targets):
        group = plan.runs[start : start + targets]
        assert len({run.cell_key for run in group}) == 1
        assert [run.target.name for run in group] == plan.target_order[group[0].repetition - 1]


def test_order_is_reproducible_from_the_seed_and_varies_across_repetitions() -> None:
    first = make_plan(PLAN_SCENARIO, repeat=6, seed=42)
    again = make_plan(PLAN_SCENARIO, repeat=6, seed=42)
    other = make_plan(PLAN_SCENARIO, repeat=6, seed=43)
    assert [r.run_id for r in first.runs] == [r.run_id for r in again.runs]
    assert first.target_order != other.target_order
    assert len({tuple(order) for order in first.target_order}) > 1


def test_each_target_takes_each_position_once_per_block_of_repetitions() -> None:
    plan = make_plan(PLAN_SCENARIO, repeat=8, seed=5)  # 4 targets: two blocks of 4
    names = sorted(t.name for t in PLAN_SCENARIO.targets)
    for block in (plan.target_order[:4], plan.target_order[4:]):
        for position in range(4):
            assert sorted(order[position] for order in block) == names


def test_estimate_counts_runtime_and_overheads() -> None:
    plan = make_plan(PLAN_SCENARIO, repeat=1, seed=1)
    fio_only = sum(run.cell.runtime * (2 if run.cell.cache == "warm" else 1) for run in plan.runs)
    assert estimate_s(plan) > fio_only
    lines = describe_plan(plan, PLAN_SCENARIO)
    assert lines[0].startswith("scenario tiny: 3 cells x 4 targets x 1 repetitions = 12 runs, seed 1")
    assert "estimated duration" in lines[1]
    assert sum("--" in line for line in lines) == 12
