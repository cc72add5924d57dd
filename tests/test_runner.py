"""Real runs into a results folder (integration: root, fio, bindfs, real signals); the session's
logic on a fake host is in test_session.py."""

from __future__ import annotations

import collections
import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench import leftovers, report, system
from bench.fio_logs import KINDS
from bench.fusefs import mounts
from bench.fusefs.kernel import uring_unavailable_reason
from bench.host import Host
from bench.plan import make_plan
from bench.records import Manifest
from bench.results import RUNS, ResultsFolder
from bench.runner import RunOptions, run
from bench.scenario import PassthroughTarget, parse_scenario
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


# ---------------------------------------------------------------- real runs (integration)


class Quiet(Host):
    """This machine, with what the runner says kept instead of printed."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)


def load_runs(out: Path) -> list[dict[str, str]]:
    """runs.csv rows exactly as written (strings); none before the folder exists."""
    if not (out / RUNS).exists():
        return []
    with open(out / RUNS, newline="") as handle:
        return list(csv.DictReader(handle))


def load_manifest(out: Path) -> Manifest:
    return ResultsFolder(out).manifest(required=True)


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
    assert done.stdout == "" and "[4/4]" in done.stderr  # progress: stderr, as stdout is a pipe
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
    assert run(RunOptions(path, out=out, workdir=tmp_path / "work"), Quiet()) == 0
    rows = {row["target"]: row for row in load_runs(out)}
    assert rows["fuse"]["fuse_requests_source"] == rows["passthrough"]["fuse_requests_source"] == "server"
    assert int(rows["fuse"]["fuse_read_requests"]) > 0 and rows["fuse"]["passthrough_engaged"] == ""
    assert rows["passthrough"]["fuse_read_requests"] == "0" and rows["passthrough"]["passthrough_engaged"] == "true"
    assert float(rows["fuse"]["daemon_cpu_sys_s"]) >= 0 and int(rows["fuse"]["daemon_fds_max"]) > 0
    assert not _fuse_mounts_under(tmp_path)


@pytest.mark.integration
def test_fio_logs_of_every_measured_run_are_kept_and_charted(tmp_path: Path, require_root: None,
                                                               require_fio: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: native, type: native}", "{name: fuse, type: fuse}"], repeat=1,
                                  workloads=["{name: jobs, rw: read, bs: 64k, size: 8M, runtime: 1s, direct: true, "
                                             "numjobs: 2, cache: warm}"]))
    out, work = tmp_path / "results", tmp_path / "work"
    assert run(RunOptions(path, out=out, workdir=work), Quiet()) == 0
    assert not _fuse_mounts_under(tmp_path)
    logs = sorted(p.name for p in (out / "fio_logs").iterdir())
    assert logs == sorted(f"jobs--{target}--r1_{kind}.{job}.log" for target in ("native", "fuse") for kind in KINDS
                          for job in (1, 2))
    assert not list((work / "scratch").rglob("*.log"))  # the unmeasured warm pass keeps none
    folder = ResultsFolder(out)
    for row in load_runs(out):
        bw = folder.fio_log(row["run_id"], "bw")
        assert bw.jobs == 2 and bw.damaged == [] and len(bw.t_s) >= 5  # log_interval auto: 100 ms for 1 s
        assert max(bw.value) > 0
    html = report.write_report(out, tmp_path / "report.html", "html").read_text()
    assert "jobs: MiB/s (fio log)" in html and "jobs: daemon open fds" in html


@pytest.mark.integration
def test_a_failing_target_is_recorded_and_the_run_goes_on(tmp_path: Path, bindfs: None) -> None:
    path = tmp_path / "s.yaml"
    broken = '{name: broken, type: external, command: ["false", "{mountpoint}"], ready_timeout: 2s}'
    path.write_text(scenario_text(targets=["{name: native, type: native}", broken], repeat=2))
    out = tmp_path / "results"
    status = run(RunOptions(path, out=out, workdir=tmp_path / "work", seed=1), Quiet())
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
    assert run(RunOptions(path, out=out, workdir=tmp_path / "work"), Quiet()) == 0
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
    assert "--resume" in stderr and "Traceback" not in stderr  # notices: stderr, as stdout is a pipe
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
    assert ResultsFolder(out).completed_run_ids() == {run.run_id for run in make_plan(parse_scenario(path.read_text()), 3, 3).runs}
    assert load_manifest(out).status == "complete"
    assert not _fuse_mounts_under(tmp_path)


def _ctrl_c_twice(scenario: Path, out: Path, tmp_path: Path,
                  once_mounted: Callable[[], None]) -> tuple[subprocess.Popen, str, str, float]:
    """`fusebench run` of `scenario` sent SIGINT twice, half a second apart, once it mounted and
    `once_mounted` returned: the process, its stdout and stderr, when the first one went."""
    argv = [sys.executable, "-m", "bench", "run", str(scenario), "--out", str(out), "--workdir", str(tmp_path / "work")]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_a_mount(tmp_path)
        once_mounted()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, stdout, stderr, started


@pytest.mark.integration
def test_second_sigint_abandons_the_current_run_and_unmounts(tmp_path: Path, bindfs: None) -> None:
    path = _bindfs_scenario(tmp_path, "{name: long, rw: randread, bs: 4k, size: 8M, runtime: 30s, cache: warm}")
    out = tmp_path / "results"

    def in_the_warm_pass() -> None:
        time.sleep(1.0)  # inside the unmeasured warm pass

    proc, stdout, stderr, started = _ctrl_c_twice(path, out, tmp_path, in_the_warm_pass)
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
    assert "cleared leftover" in done.stderr and done.stdout == ""  # notices: stderr, as stdout is a pipe
    assert [row["status"] for row in load_runs(tmp_path / "next")] == ["ok"]
    assert not _fuse_mounts_under(tmp_path)


# ---------------------------------------------------------------- FUSE over io_uring (integration)

URING = "{name: ring, type: fuse, transport: uring}"


@pytest.fixture
def uring_off(require_root: None, require_fio: None) -> Iterator[None]:
    """enable_uring N for the test (as on a machine that never turned it on), its value put back after."""
    original = system.uring_parameter()
    assert original is not None, uring_unavailable_reason()  # the machines CI runs on have it
    system.ENABLE_URING.write_text("N\n")
    try:
        yield
    finally:
        system.ENABLE_URING.write_text(f"{original}\n")


@pytest.mark.integration
def test_a_uring_run_turns_the_parameter_on_and_back_and_records_the_transport(tmp_path: Path, uring_off: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=["{name: native, type: native}", URING], repeat=1))
    out = tmp_path / "results"
    done = _run_cli("run", str(path), "--out", str(out), "--workdir", str(tmp_path / "work"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert system.uring_parameter() == "N"
    assert not _fuse_mounts_under(tmp_path)
    rows = {row["target"]: row for row in load_runs(out)}
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert rows["ring"]["transport"] == "uring" and int(rows["ring"]["ring_requests"]) > 0
    assert rows["native"]["transport"] == rows["native"]["ring_requests"] == ""
    manifest = load_manifest(out)
    assert (manifest.enable_uring.before, manifest.enable_uring.during) == ("N", "Y")
    assert "transport as run: FUSE over io_uring" in report.render(report.analyse_folder(out), "text")


@pytest.mark.integration
def test_sigint_during_a_uring_run_puts_the_parameter_back(tmp_path: Path, uring_off: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=[URING], repeat=1, workloads=[
        "{name: long, rw: randread, bs: 4k, size: 8M, runtime: 30s, cache: warm}"]))

    def mounted_with_uring_on() -> None:
        assert _fuse_mounts_under(tmp_path) and system.uring_parameter() == "Y"

    proc, stdout, stderr, _ = _ctrl_c_twice(path, tmp_path / "results", tmp_path, mounted_with_uring_on)
    assert proc.returncode == 130, stdout + stderr
    assert system.uring_parameter() == "N"
    assert not _fuse_mounts_under(tmp_path)


@pytest.mark.integration
def test_a_killed_uring_run_leaves_the_parameter_on_until_the_leftovers_are_cleared(tmp_path: Path,
                                                                                    uring_off: None) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_text(targets=[URING], repeat=1, workloads=[
        "{name: rr, rw: randread, bs: 4k, size: 8M, runtime: 30s, cache: warm}"]))
    argv = [sys.executable, "-m", "bench", "run", str(path), "--out", str(tmp_path / "results"),
            "--workdir", str(tmp_path / "work")]
    killed = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_a_mount(tmp_path)
        assert _fuse_mounts_under(tmp_path), "the run never mounted"
    finally:
        killed.kill()  # no chance to unmount or turn it back: what a crash leaves behind
        killed.wait()
    assert system.uring_parameter() == "Y" and _fuse_mounts_under(tmp_path)

    messages = leftovers.clear_leftovers()  # what the next run does first

    assert messages[-1] == f"restored {system.ENABLE_URING} to N (enable_uring) from pid {killed.pid}"
    assert system.uring_parameter() == "N"
    assert not _fuse_mounts_under(tmp_path)
    assert leftovers.entries() == []
