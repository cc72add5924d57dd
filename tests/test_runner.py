"""The planner (unit) and real runs into a results folder (integration: root, fio, bindfs)."""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.fusefs import mounts
from bench.results import completed_run_ids, load_manifest, load_runs
from bench.runner import RunOptions, describe_plan, estimate_s, make_plan, run
from bench.scenario import PassthroughTarget, cell_key, parse_scenario
from bench.targets import target_unavailable_reason
from bench.tracing import tracing_unavailable_reason

BINDFS = '{name: bind, type: external, command: [bindfs, -f, "{source}", "{mountpoint}"]}'


def scenario_text(*, targets: list[str], repeat: int = 2, workloads: list[str] | None = None) -> str:
    """A tiny scenario: 8 MiB files, 1 s runs."""
    workloads = workloads or ["{name: seqread, rw: read, bs: 1M, size: 8M, runtime: 1s, cache: cold}"]
    lines = ["name: tiny", f"repeat: {repeat}", "targets:"]
    lines += [f"  - {target}" for target in targets]
    lines += ["workloads:"] + [f"  - {workload}" for workload in workloads]
    return "\n".join(lines) + "\n"


PLAN_SCENARIO = parse_scenario(
    scenario_text(
        targets=["{name: a, type: native}", "{name: b, type: fuse}", "{name: c, type: passthrough}", BINDFS],
        repeat=6,
        workloads=[
            "{name: seq, rw: read, bs: 1M, size: 8M, runtime: 2s}",
            "{name: rand, rw: randread, bs: 4k, size: 8M, runtime: 1s, iodepth: [1, 8], ioengine: libaio, cache: warm}",
        ],
    )
)


# ---------------------------------------------------------------- planner (unit)


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


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: n, type: native}"]))
    said: list[str] = []
    status = run(RunOptions(path, out=tmp_path / "out", dry_run=True, seed=5), say=said.append)
    assert status == 0
    assert "seed 5" in said[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- real runs (integration)


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=240)


def _fuse_mounts_under(path: Path) -> list[str]:
    base = str(path.resolve())
    return [m.mountpoint for m in mounts.mounts() if m.is_fuse and m.mountpoint.startswith(base)]


def _bindfs_scenario(tmp_path: Path, workload: str) -> Path:
    """A one-repetition scenario of `workload` on bindfs, written to tmp_path/s.yaml."""
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=[BINDFS], repeat=1, workloads=[workload]))
    return path


def _wait_for_a_mount(tmp_path: Path, timeout: float = 30) -> None:
    """Until a run started in the background has mounted something under tmp_path."""
    deadline = time.monotonic() + timeout
    while not _fuse_mounts_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def bindfs(require_root: None, require_fio: None) -> None:
    if shutil.which("bindfs") is None:
        pytest.skip("needs bindfs")


@pytest.mark.integration
def test_run_on_native_and_bindfs_writes_a_complete_folder(tmp_path: Path, bindfs: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: native, type: native}", BINDFS], repeat=2))
    out = tmp_path / "results"
    done = _run_cli(
        "run", str(path), "--out", str(out), "--workdir", str(tmp_path / "work"), "--seed", "9", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert not _fuse_mounts_under(tmp_path)

    manifest = load_manifest(out)
    assert manifest.status == "complete" and manifest.seed == 9 and manifest.ended_at
    assert manifest.host["kernel"] and manifest.fio_version.startswith("fio-")
    assert (out / "scenario.yaml").read_text() == path.read_text()
    rows = load_runs(out)
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    for row in rows:
        assert float(row["read_bw_mib_s"]) > 0 and float(row["read_iops"]) > 0
        assert float(row["read_clat_p99_us"]) > 0
        assert row["write_bw_mib_s"] == ""  # a read workload: write columns do not apply
        assert (out / "fio" / f"{row['run_id']}.json").is_file()
        json.loads((out / "fio" / f"{row['run_id']}.json").read_text())
    bind = [row for row in rows if row["target"] == "bind"]
    assert all(row["daemon_fds_max"] not in ("", "0") for row in bind)
    if tracing_unavailable_reason() is None:  # an external server's requests come from the tracepoint
        assert all(row["fuse_requests_source"] == "tracepoint" and int(row["fuse_read_requests"]) > 0 for row in bind)
    samples = (out / "samples.csv").read_text().splitlines()
    assert samples[0].startswith("run_id,")
    assert {line.split(",")[0] for line in samples[1:]} == {row["run_id"] for row in rows}


@pytest.mark.integration
def test_builtin_targets_count_requests_and_show_passthrough_engaged(
    tmp_path: Path, require_root: None, require_fio: None
) -> None:
    passthrough = PassthroughTarget(name="passthrough", type="passthrough")
    if target_unavailable_reason(passthrough):
        pytest.skip(target_unavailable_reason(passthrough))
    path = tmp_path / "s.yaml"
    path.write_text(
        scenario_text(
            targets=["{name: fuse, type: fuse}", "{name: passthrough, type: passthrough}"],
            repeat=1,
            workloads=["{name: rr, rw: randread, bs: 4k, size: 8M, runtime: 1s, direct: true}"],
        )
    )
    out = tmp_path / "results"
    assert run(RunOptions(path, out=out, workdir=tmp_path / "work"), say=lambda _: None) == 0
    rows = {row["target"]: row for row in load_runs(out)}
    assert rows["fuse"]["fuse_requests_source"] == rows["passthrough"]["fuse_requests_source"] == "server"
    assert int(rows["fuse"]["fuse_read_requests"]) > 0 and rows["fuse"]["passthrough_engaged"] == ""
    assert rows["passthrough"]["fuse_read_requests"] == "0" and rows["passthrough"]["passthrough_engaged"] == "true"
    assert float(rows["fuse"]["daemon_cpu_sys_s"]) >= 0 and int(rows["fuse"]["daemon_fds_max"]) > 0
    assert not _fuse_mounts_under(tmp_path)


@pytest.mark.integration
def test_a_failing_target_is_recorded_and_the_run_goes_on(tmp_path: Path, bindfs: None) -> None:
    path = tmp_path / "s.yaml"
    broken = '{name: broken, type: external, command: ["false", "{mountpoint}"], ready_timeout: 2s}'
    path.write_text(scenario_text(targets=["{name: native, type: native}", broken], repeat=2))
    out = tmp_path / "results"
    said: list[str] = []
    status = run(RunOptions(path, out=out, workdir=tmp_path / "work", seed=1), say=said.append)
    assert status == 1
    rows = {row["run_id"]: row for row in load_runs(out)}
    assert rows["seqread--native--r1"]["status"] == rows["seqread--native--r2"]["status"] == "ok"
    assert rows["seqread--broken--r1"]["status"] == "failed"
    assert "exited with status 1" in rows["seqread--broken--r1"]["error"]
    assert rows["seqread--broken--r2"]["error"].startswith("mount failed earlier")
    assert load_manifest(out).cells()["seqread"] == {"native": "ok", "broken": "failed"}
    assert not _fuse_mounts_under(tmp_path)


@pytest.mark.integration
def test_existing_results_are_kept_without_force(tmp_path: Path, require_root: None, require_fio: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: native, type: native}"], repeat=1))
    out = tmp_path / "results"
    assert run(RunOptions(path, out=out, workdir=tmp_path / "work"), say=lambda _: None) == 0
    first = load_runs(out)
    again = _run_cli("run", str(path), "--out", str(out), "--workdir", str(tmp_path / "work"), cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists; use --resume" in again.stderr and "Traceback" not in again.stderr
    assert load_runs(out) == first
    forced = _run_cli("run", str(path), "--out", str(out), "--workdir", str(tmp_path / "work"), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert load_runs(out)[0]["started_at"] >= first[0]["started_at"]


@pytest.mark.integration
def test_sigint_stops_cleanly_and_resume_completes(tmp_path: Path, bindfs: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: native, type: native}", BINDFS], repeat=3))
    out = tmp_path / "results"
    argv = [
        sys.executable,
        "-m",
        "bench",
        "run",
        str(path),
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
        "--seed",
        "3",
    ]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not load_runs(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert load_runs(out), "no run finished within 60 s"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "--resume" in stdout and "Traceback" not in stderr
    assert not _fuse_mounts_under(tmp_path)
    manifest = load_manifest(out)
    assert manifest.status == "interrupted"
    kept = {row["run_id"]: row for row in load_runs(out)}
    assert 1 <= len(kept) < 6 and all(row["status"] == "ok" for row in kept.values())

    resumed = _run_cli(
        "run",
        str(out / "scenario.yaml"),
        "--out",
        str(out),
        "--resume",
        "--workdir",
        str(tmp_path / "work"),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = load_runs(out)
    counts = collections.Counter(row["run_id"] for row in rows)
    assert len(counts) == 6 and set(counts.values()) == {1}, counts
    assert all(row["status"] == "ok" for row in rows)
    for run_id, row in kept.items():  # what was measured before the stop was not redone
        assert next(r for r in rows if r["run_id"] == run_id)["started_at"] == row["started_at"]
    assert completed_run_ids(out) == {run.run_id for run in make_plan(parse_scenario(path.read_text()), 3, 3).runs}
    assert load_manifest(out).status == "complete"
    assert not _fuse_mounts_under(tmp_path)


@pytest.mark.integration
def test_second_sigint_abandons_the_current_run_and_unmounts(tmp_path: Path, bindfs: None) -> None:
    path = _bindfs_scenario(tmp_path, "{name: long, rw: randread, bs: 4k, size: 8M, runtime: 30s, cache: warm}")
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "bench", "run", str(path), "--out", str(out), "--workdir", str(tmp_path / "work")]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_a_mount(tmp_path)
        time.sleep(1.0)  # inside the unmeasured warm pass
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert time.monotonic() - started < 20, "the second Ctrl-C did not abandon the 2 x 30 s run"
    assert "Traceback" not in stderr
    assert not _fuse_mounts_under(tmp_path)
    assert load_runs(out) == []
    assert load_manifest(out).status == "interrupted"


@pytest.mark.integration
def test_a_killed_run_leaves_a_mount_that_the_next_run_clears(tmp_path: Path, bindfs: None) -> None:
    path = _bindfs_scenario(tmp_path, "{name: rr, rw: randread, bs: 4k, size: 8M, runtime: 2s, cache: warm}")
    work = tmp_path / "work"
    argv = [sys.executable, "-m", "bench", "run", str(path), "--workdir", str(work)]
    killed = subprocess.Popen([*argv, "--out", str(tmp_path / "killed")], cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        _wait_for_a_mount(tmp_path)
        assert _fuse_mounts_under(tmp_path), "the run never mounted"
    finally:
        killed.kill()  # no chance to unmount: what a crash leaves behind
        killed.wait()
    assert _fuse_mounts_under(tmp_path)
    done = subprocess.run(
        [*argv, "--out", str(tmp_path / "next")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cleared leftover" in done.stdout
    assert [row["status"] for row in load_runs(tmp_path / "next")] == ["ok"]
    assert not _fuse_mounts_under(tmp_path)


@pytest.mark.integration
def test_resume_refuses_a_changed_scenario(tmp_path: Path, require_root: None, require_fio: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: native, type: native}"], repeat=1))
    out = tmp_path / "results"
    assert run(RunOptions(path, out=out, workdir=tmp_path / "work"), say=lambda _: None) == 0
    path.write_text(path.read_text().replace("runtime: 1s", "runtime: 2s"))
    done = _run_cli("run", str(path), "--out", str(out), "--resume", cwd=tmp_path)
    assert done.returncode == 2
    assert "changed since" in done.stderr


def test_durations_read_well() -> None:
    from bench.progress import format_duration

    assert [format_duration(s) for s in (0.4, 45, 185, 3720)] == ["0s", "45s", "3m05s", "1h02m"]
