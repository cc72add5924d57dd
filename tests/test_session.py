"""The runner's session on a fake host (no root, no mounts, no fio): complete runs, failed runs
and remounts, unavailable targets, Ctrl-C once and twice, and resuming what was left."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fake_host import FakeHost, ctrl_c, fails, hangs_until_ctrl_c_twice, read_json

import bench
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InputError
from bench.results import ResultsFolder
from bench.runner import RunOptions, run

SCENARIO = """\
name: unit
repeat: 2
seed: 1
targets:
  - {name: native, type: native}
  - {name: fuse, type: fuse}
workloads:
  - {name: seqread, rw: read, bs: 64k, size: 128k, runtime: 1s}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "unit.yaml"
    path.write_text(SCENARIO)
    return path


def options(tmp_path: Path, scenario: Path, **changes) -> RunOptions:
    return RunOptions(scenario, out=tmp_path / "out", workdir=tmp_path / "work", **changes)


def statuses(tmp_path: Path) -> dict[str, str]:
    runs = ResultsFolder(tmp_path / "out").runs()
    return dict(zip(runs["run_id"], runs["status"]))


def test_a_complete_run_measures_every_run_and_mounts_each_target_once(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    assert run(options(tmp_path, scenario), host) == EXIT_OK
    assert statuses(tmp_path) == {f"seqread--{t}--r{r}": "ok" for t in ("native", "fuse") for r in (1, 2)}
    manifest = read_json(tmp_path / "out" / "manifest.json")
    assert manifest["status"] == "complete" and manifest["cells"] == {"seqread": {"native": "ok", "fuse": "ok"}}
    # every target is mounted once for the whole run, and comes down at the end
    assert host.events.count("mount fuse") == host.events.count("mount native") == 1
    assert sorted(host.events[-2:]) == ["unmount fuse", "unmount native"]
    assert host.events.count("drop caches") == 4
    assert host.said[-1] == f"done: 4 ok in {tmp_path / 'out'}"
    runs = ResultsFolder(tmp_path / "out").runs()
    assert runs["read_iops"].notna().all() and runs["write_iops"].isna().all()
    assert len(ResultsFolder(tmp_path / "out").samples()) == 4


def test_a_failed_run_is_a_row_and_the_next_run_gets_a_fresh_daemon(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    first_fuse_run = 1 + read_order(tmp_path, scenario).index("seqread--fuse--r1")
    host.fio_behaviour[first_fuse_run] = fails("fio exited with status 1; fio said: EIO")
    assert run(options(tmp_path, scenario), host) == EXIT_FAILED
    assert statuses(tmp_path)["seqread--fuse--r1"] == "failed"
    assert list(statuses(tmp_path).values()).count("ok") == 3
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    assert runs.loc["seqread--fuse--r1", "error"] == "fio exited with status 1; fio said: EIO"
    assert host.events.count("mount fuse") == 2  # remounted after the failure
    assert "some runs failed" in host.said[-1]


def test_a_mount_that_fails_is_not_retried(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost(failing_mounts={"fuse"})
    assert run(options(tmp_path, scenario), host) == EXIT_FAILED
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    assert runs.loc["seqread--fuse--r1", "error"].startswith("target fuse: server exited with status 2")
    assert runs.loc["seqread--fuse--r2", "error"].startswith("mount failed earlier: target fuse")
    assert list(runs["status"]).count("ok") == 2


def test_an_unavailable_target_is_said_once_and_recorded(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost(unavailable={"fuse": "FUSE targets need root"})
    assert run(options(tmp_path, scenario), host) == EXIT_OK
    assert statuses(tmp_path)["seqread--fuse--r2"] == "unavailable"
    assert host.said.count("fuse: skipped: FUSE targets need root") == 1
    assert read_json(tmp_path / "out" / "manifest.json")["skipped_targets"] == {"fuse": "FUSE targets need root"}
    assert "mount fuse" not in host.events


def test_ctrl_c_finishes_the_current_run_and_resume_completes_the_folder(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    host.fio_behaviour[2] = ctrl_c
    assert run(options(tmp_path, scenario), host) == EXIT_INTERRUPTED
    done = statuses(tmp_path)
    assert len(done) == 2 and set(done.values()) == {"ok"}  # the second run finished; nothing started after it
    assert read_json(tmp_path / "out" / "manifest.json")["status"] == "interrupted"
    assert "SIGINT: stopping after the current run" in host.said[-3]
    assert host.said[-1].endswith(f"--out {tmp_path / 'out'} --resume")
    assert sorted(host.events[-2:]) == ["unmount fuse", "unmount native"]

    again = FakeHost()
    kept = tmp_path / "out" / "scenario.yaml"
    assert run(options(tmp_path, kept, resume=True), again) == EXIT_OK
    assert again.fio_runs == 2
    assert sorted(statuses(tmp_path)) == sorted(f"seqread--{t}--r{r}" for t in ("native", "fuse") for r in (1, 2))
    manifest = read_json(tmp_path / "out" / "manifest.json")
    assert manifest["status"] == "complete" and manifest["notes"][-1].endswith(f"resumed by fusebench {bench.__version__}; 2 runs kept, 2 to run")


def test_a_second_ctrl_c_abandons_the_run_and_still_unmounts(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    host.fio_behaviour[2] = hangs_until_ctrl_c_twice
    assert run(options(tmp_path, scenario), host) == EXIT_INTERRUPTED
    assert len(statuses(tmp_path)) == 1  # the abandoned run left no row
    assert sorted(host.events[-2:]) == ["unmount fuse", "unmount native"]
    assert read_json(tmp_path / "out" / "manifest.json")["status"] == "interrupted"


def test_resume_redoes_failed_and_killed_runs_and_drops_what_the_killed_one_left(tmp_path: Path,
                                                                                 scenario: Path) -> None:
    host = FakeHost()
    host.fio_behaviour[1] = fails("boom")
    host.fio_behaviour[3] = ctrl_c
    run(options(tmp_path, scenario), host)
    done = statuses(tmp_path)
    assert list(done.values()).count("failed") == 1 and len(done) == 3
    # As if the fourth run had been killed after writing its samples, before its runs.csv row:
    (killed,) = set(read_order(tmp_path, scenario)) - set(done)
    samples = tmp_path / "out" / "samples.csv"
    samples.write_text(samples.read_text() + f"{killed},9.9,system,,,,,,,,,,1\n")
    assert run(options(tmp_path, tmp_path / "out" / "scenario.yaml", resume=True), FakeHost()) == EXIT_OK
    assert set(statuses(tmp_path).values()) == {"ok"} and len(statuses(tmp_path)) == 4
    again = ResultsFolder(tmp_path / "out").samples()
    assert list(again.loc[again["run_id"] == killed, "t_s"]) == [0.0]  # the redone run's own sample only


def test_resume_refuses_a_changed_scenario_or_other_repetitions(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    host.fio_behaviour[1] = ctrl_c
    run(options(tmp_path, scenario), host)
    scenario.write_text(SCENARIO.replace("runtime: 1s", "runtime: 2s"))
    with pytest.raises(InputError, match="changed since"):
        run(options(tmp_path, scenario, resume=True), FakeHost())
    with pytest.raises(InputError, match="--repeat 3 differs from the 2"):
        run(options(tmp_path, tmp_path / "out" / "scenario.yaml", resume=True, repeat=3), FakeHost())


def test_fd_pressure_runs_after_the_workloads_and_not_after_ctrl_c(tmp_path: Path, scenario: Path) -> None:
    scenario.write_text(SCENARIO + "fd_pressure: {targets: [fuse], open_files: [10]}\n")
    host = FakeHost()
    assert run(options(tmp_path, scenario), host) == EXIT_OK
    assert host.events[-1] == "fd pressure"
    assert read_json(tmp_path / "out" / "manifest.json")["fd_pressure"] == "ok"
    interrupted = FakeHost()
    interrupted.fio_behaviour[4] = ctrl_c
    assert run(options(tmp_path, scenario, force=True), interrupted) == EXIT_INTERRUPTED
    assert "fd pressure" not in interrupted.events
    assert read_json(tmp_path / "out" / "manifest.json")["fd_pressure"] == "pending"


def test_dry_run_says_the_plan_and_writes_nothing(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost(unavailable={"fuse": "needs root"})
    assert run(options(tmp_path, scenario, dry_run=True, seed=5), host) == EXIT_OK
    assert host.said[0] == "scenario unit: 1 cells x 2 targets x 2 repetitions = 4 runs, seed 5"
    assert host.said[-1] == "fuse: would be skipped here: needs root"
    assert not (tmp_path / "out").exists() and host.events == []


def read_order(tmp_path: Path, scenario: Path) -> list[str]:
    """The run ids in the order the plan runs them (from a dry run)."""
    host = FakeHost()
    run(options(tmp_path, scenario, dry_run=True), host)
    return [line.split()[1] for line in host.said if line.lstrip()[:1].isdigit()]


def test_requests_of_built_in_targets_are_counted_per_opcode(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    host.stats = {"pid": None, "time": 4e9, "requests": {"LOOKUP": 3}}
    host.requests_per_run = {"READ": 100, "LOOKUP": 2, "GETATTR": 1}
    assert run(options(tmp_path, scenario), host) == EXIT_OK
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    fuse = runs.loc["seqread--fuse--r1"]
    assert (fuse["fuse_read_requests"], fuse["fuse_write_requests"], fuse["fuse_other_requests"]) == (100, 0, 3)
    assert fuse["fuse_requests_source"] == "server"
    assert runs.loc["seqread--native--r1", "fuse_requests_source"] is pd.NA
    requests = ResultsFolder(tmp_path / "out").requests()
    per_run = requests[requests["run_id"] == "seqread--fuse--r2"]
    assert dict(zip(per_run["opcode"], per_run["requests"])) == {"LOOKUP": 2, "GETATTR": 1, "READ": 100}
    assert set(requests["run_id"]) == {"seqread--fuse--r1", "seqread--fuse--r2"}  # native: not a FUSE mount


def test_fd_pressure_steps_are_kept_with_their_readings_and_client_reports(tmp_path: Path, scenario: Path) -> None:
    scenario.write_text(SCENARIO + "fd_pressure: {targets: [fuse], open_files: [10, 20]}\n")
    assert run(options(tmp_path, scenario), FakeHost()) == EXIT_OK
    folder = ResultsFolder(tmp_path / "out")
    assert list(folder.fd_pressure()["open_files"]) == [10, 20]
    snapshots = folder.fd_snapshots()
    assert list(snapshots["phase"][:4]) == ["baseline", "before", "held", "after"] and len(snapshots) == 8
    assert folder.fd_client_report("fuse", 20)["clients"][0]["open_ns"] == [1000] * 20


FAMILIES = """\
name: families
repeat: 1
seed: 1
targets:
  - {name: native, type: native}
  - {name: fuse, type: fuse}
workloads:
  - {name: create, ioengine: filecreate, nrfiles: 20, size: 4096}
opens:
  - {name: loop, files: 10, runtime: 1s}
programs:
  - {name: find, program: find-stat, tree: {files: 20, dirs: 3}}
  - {name: build, program: make, sources: 2}
"""


def test_every_family_is_recorded_with_its_kind_its_work_and_its_starting_tree(tmp_path: Path) -> None:
    path = tmp_path / "families.yaml"
    path.write_text(FAMILIES)
    host = FakeHost()
    host.stats = {"requests": {}, "backing_opens_total": 0}
    host.requests_per_run = {"OPEN": 10, "LOOKUP": 3}
    host.backing_per_run = {"backing_opens_total": 10, "backing_open_ns_total": 52_000,
                            "backing_closes_total": 4, "backing_close_ns_total": 10_000}
    assert run(options(tmp_path, path), host) == EXIT_OK
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    assert set(runs["status"]) == {"ok"} and len(runs) == 8
    assert runs.loc["loop--fuse--r1", "family"] == "opens" and runs.loc["find--native--r1", "program"] == "find-stat"
    assert runs.loc["loop--fuse--r1", "ops_per_s"] == 2000 and runs.loc["loop--fuse--r1", "op_p50_us"] == 5.0
    assert runs.loc["find--fuse--r1", "ops"] == 1 and runs.loc["find--fuse--r1", "files"] == 20
    assert runs.loc["create--fuse--r1", "family"] == "fio" and runs.loc["create--fuse--r1", "ops"] > 0
    for cell in ("create", "loop", "find", "build"):
        assert runs.loc[f"{cell}--native--r1", "start_tree"] == runs.loc[f"{cell}--fuse--r1", "start_tree"]
    fuse = runs.loc["loop--fuse--r1"]
    assert (fuse["backing_opens"], fuse["backing_open_us"], fuse["backing_close_us"]) == (10, 5.2, 2.5)
    assert pd.isna(runs.loc["loop--native--r1", "backing_opens"])
    assert (tmp_path / "out" / "opens" / "loop--fuse--r1.json").is_file()
    # the loop and the programs ran as commands (the fio cell through fio), each workload CPU from the kernel
    assert [argv[1:3] for argv in host.commands].count(["-m", "bench.opens"]) == 2
    assert sum("make" in argv[0] for argv in host.commands) == 2
    assert (runs["fio_cpu_user_s"] == 0.25).all() and (runs["fio_cpu_sys_s"] == 0.5).all()  # the kernel's account


def test_a_program_that_fails_is_a_failed_row_with_what_it_said(tmp_path: Path) -> None:
    path = tmp_path / "families.yaml"
    path.write_text(FAMILIES)
    host = FakeHost()
    host.command_status = 2
    assert run(options(tmp_path, path), host) == EXIT_FAILED
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    assert runs.loc["find--fuse--r1", "error"].startswith("find-stat exited with status 2")
    assert "it went wrong" in runs.loc["find--fuse--r1", "error"]
    assert runs.loc["loop--native--r1", "error"].startswith("the open/close loop exited with status 2")
    assert runs.loc["create--native--r1", "status"] == "ok"


def test_a_program_whose_commands_are_missing_is_unavailable_and_said_once(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.programs import Make

    monkeypatch.setattr(Make, "requires", ("no-such-compiler-here",))
    path = tmp_path / "families.yaml"
    path.write_text(FAMILIES)
    host = FakeHost()
    assert run(options(tmp_path, path), host) == EXIT_OK
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    assert set(runs.loc[["build--native--r1", "build--fuse--r1"], "status"]) == {"unavailable"}
    assert "no-such-compiler-here not found" in runs.loc["build--fuse--r1", "error"]
    assert [line for line in host.said if "skipped" in line] == [
        "build: skipped: no-such-compiler-here not found on PATH (Debian: apt-get install no-such-compiler-here)"]


AUTO = SCENARIO.replace("repeat: 2", "repeat: auto\nmax_repeat: 6")


def auto_scenario(tmp_path: Path, text: str = AUTO) -> Path:
    path = tmp_path / "auto.yaml"
    path.write_text(text)
    return path


def test_auto_stops_once_every_comparison_with_the_baseline_is_decided(tmp_path: Path) -> None:
    host = FakeHost()
    host.speed_of = lambda run_id: 0.5 if "--fuse--" in run_id else 1.0  # fuse: half native's speed, every run
    assert run(options(tmp_path, auto_scenario(tmp_path)), host) == EXIT_OK
    manifest = ResultsFolder(tmp_path / "out").manifest()
    assert (manifest.auto.stopped, manifest.repeat, manifest.auto.undecided) == ("decided", 3, [])
    assert len(manifest.plan) == len(manifest.runs) == 6  # 3 repetitions x 2 targets, no more planned
    assert "after 3 repetitions: 1 slower; stopping (decided)" in host.said


def test_auto_adds_repetitions_while_undecided_up_to_its_budget(tmp_path: Path) -> None:
    host = FakeHost()
    # fuse alternates between 0.7 and 1.3 of native: never decided either way
    host.speed_of = lambda run_id: (0.7 if run_id.endswith(("1", "3", "5")) else 1.3) if "--fuse--" in run_id else 1.0
    assert run(options(tmp_path, auto_scenario(tmp_path)), host) == EXIT_OK
    manifest = ResultsFolder(tmp_path / "out").manifest()
    assert (manifest.auto.stopped, manifest.repeat, manifest.auto.undecided) == ("max_repeat", 6, ["seqread / fuse"])
    assert len(manifest.runs) == 12 and [line for line in host.said if line.startswith("(+")] == ["(+2 runs)"] * 3
    assert "after 5 repetitions: 1 undecided; adding repetition 6" in host.said


def test_an_auto_run_interrupted_and_resumed_goes_on_where_it_stopped(tmp_path: Path) -> None:
    undecided_until_5 = {"r1": 0.6, "r2": 1.4, "r3": 0.6, "r4": 1.4, "r5": 0.5, "r6": 0.5}
    host = FakeHost()
    host.speed_of = lambda run_id: undecided_until_5.get(run_id[-2:], 1.0) * 0.5 if "--fuse--" in run_id else 0.5
    host.fio_behaviour[8] = ctrl_c  # during repetition 4
    scenario = auto_scenario(tmp_path)
    assert run(options(tmp_path, scenario), host) == EXIT_INTERRUPTED
    first = ResultsFolder(tmp_path / "out").manifest()
    assert (first.status, first.repeat, len(first.runs), first.auto.stopped) == ("interrupted", 4, 8, None)
    again = FakeHost()
    again.speed_of = host.speed_of
    assert run(options(tmp_path, tmp_path / "out" / "scenario.yaml", resume=True), again) == EXIT_OK
    manifest = ResultsFolder(tmp_path / "out").manifest()
    assert (manifest.status, manifest.repeat, manifest.auto.stopped) == ("complete", 6, "max_repeat")
    assert manifest.auto.elapsed_s > first.auto.elapsed_s
    runs = ResultsFolder(tmp_path / "out").runs()
    assert sorted(runs["repetition"].value_counts().to_dict().items()) == [(r, 2) for r in range(1, 7)]


def test_an_auto_run_refuses_a_fixed_repeat_on_resume(tmp_path: Path) -> None:
    host = FakeHost()
    assert run(options(tmp_path, auto_scenario(tmp_path)), host) == EXIT_OK
    with pytest.raises(InputError, match="started with repeat: auto; drop --repeat"):
        run(options(tmp_path, tmp_path / "out" / "scenario.yaml", resume=True, repeat=4), FakeHost())


def test_dry_run_of_an_auto_scenario_shows_its_budget(tmp_path: Path) -> None:
    host = FakeHost()
    assert run(options(tmp_path, auto_scenario(tmp_path, AUTO + "max_time: 10m\n"), dry_run=True), host) == EXIT_OK
    assert host.said[0].startswith("scenario unit: 1 cells x 2 targets x 3 to 6 repetitions (repeat: auto) = 6 to 12 "
                                   "runs, until every comparison with native is decided at a 5% threshold")
    assert "(max_time 10m00s)" in host.said[1]
    assert sum(line.lstrip()[:1].isdigit() for line in host.said) == 6  # the runs of the first 3 repetitions
    assert host.said[-1].startswith("  ... then repetitions 4 to 6")


def test_every_second_of_an_auto_run_counts_against_max_time(tmp_path: Path) -> None:
    host = FakeHost()
    host.speed_of = lambda run_id: (0.7 if run_id.endswith(("1", "3", "5")) else 1.3) if "--fuse--" in run_id else 1.0
    # the fake clock moves 1.5 s at every reading: the first repetitions alone pass 5 s
    assert run(options(tmp_path, auto_scenario(tmp_path, AUTO + "max_time: 5s\n")), host) == EXIT_OK
    manifest = ResultsFolder(tmp_path / "out").manifest()
    assert (manifest.auto.stopped, manifest.repeat) == ("max_time", 3)
    assert manifest.auto.elapsed_s >= 5


def test_a_run_whose_data_files_do_not_fit_is_refused_before_anything_starts(tmp_path: Path, scenario: Path) -> None:
    class Full(FakeHost):
        def free_bytes(self, path: Path) -> int:
            return 64 << 10  # the scenario's files need 128k

    host = Full()
    with pytest.raises(InputError, match=r"need 0.0 GiB more .* 0.0 GiB free; free some space"):
        run(options(tmp_path, scenario), host)
    assert host.events == [] and not (tmp_path / "out").exists()


URING = SCENARIO.replace("  - {name: fuse, type: fuse}\n", "  - {name: fuse, type: fuse}\n  - {name: ring, type: fuse, transport: uring}\n")


def test_a_uring_target_has_the_parameter_on_for_the_whole_run_and_back_after(tmp_path: Path) -> None:
    path = tmp_path / "uring.yaml"
    path.write_text(URING)
    host = FakeHost()
    host.stats = {"pid": None, "time": 4e9, "transport": "dev", "requests": {"LOOKUP": 3}}
    host.requests_per_run = {"READ": 100, "LOOKUP": 2}

    def rings(target, source, workdir, mount=host.mount):  # the uring target's server says so in its stats
        transport = getattr(target, "transport", "dev")
        host.stats = {key: value for key, value in host.stats.items() if key != "ring"} | {"transport": transport}
        if transport == "uring":
            host.stats["ring"] = {"queues": 2, "depth": 32, "requests": {}}
        return mount(target, source, workdir)

    host.mount = rings
    assert run(options(tmp_path, path), host) == EXIT_OK
    # on before the first mount, off after the last unmount
    assert host.events[0] == "enable_uring Y" and host.events[-1] == "enable_uring N"
    assert host.events.count("enable_uring Y") == 1 and host.enable_uring == "N"
    assert any("FUSE over io_uring turned on for the run (enable_uring N -> Y" in line for line in host.said)
    assert read_json(tmp_path / "out" / "manifest.json")["enable_uring"] == {"before": "N", "during": "Y"}
    runs = ResultsFolder(tmp_path / "out").runs().set_index("run_id")
    assert (runs.loc["seqread--ring--r1", "transport"], runs.loc["seqread--ring--r1", "ring_requests"]) == ("uring", 102)
    assert (runs.loc["seqread--fuse--r2", "transport"], runs.loc["seqread--fuse--r2", "ring_requests"]) == ("dev", 0)
    assert runs.loc["seqread--native--r1", "transport"] is pd.NA


def test_a_run_without_a_uring_target_leaves_the_parameter_alone(tmp_path: Path, scenario: Path) -> None:
    host = FakeHost()
    assert run(options(tmp_path, scenario), host) == EXIT_OK
    assert not any("enable_uring" in event for event in host.events)
    assert read_json(tmp_path / "out" / "manifest.json")["enable_uring"] is None


def test_ctrl_c_twice_still_turns_uring_back(tmp_path: Path) -> None:
    path = tmp_path / "uring.yaml"
    path.write_text(URING)
    host = FakeHost()
    host.fio_behaviour[2] = hangs_until_ctrl_c_twice
    assert run(options(tmp_path, path), host) == EXIT_INTERRUPTED
    assert host.events[-1] == "enable_uring N" and host.enable_uring == "N"


def test_an_unavailable_uring_target_is_skipped_and_the_parameter_left_alone(tmp_path: Path) -> None:
    """A kernel without FUSE over io_uring makes the uring target unavailable (targets.py says
    why); the other targets run, and nothing switches the parameter."""
    path = tmp_path / "uring.yaml"
    path.write_text(URING)
    host = FakeHost()
    host.enable_uring = None
    host.unavailable = {"ring": "the kernel has no FUSE over io_uring"}
    assert run(options(tmp_path, path), host) == EXIT_OK
    assert not any("enable_uring" in event for event in host.events)
    manifest = read_json(tmp_path / "out" / "manifest.json")
    assert manifest["enable_uring"] is None and manifest["skipped_targets"] == {"ring": host.unavailable["ring"]}
    runs = ResultsFolder(tmp_path / "out").runs()
    assert set(runs[runs["target"] == "ring"]["status"]) == {"unavailable"}
    assert set(runs[runs["target"] != "ring"]["status"]) == {"ok"}


URING = SCENARIO.replace("  - {name: fuse, type: fuse}\n", "  - {name: fuse, type: fuse}\n  - {name: ring, type: fuse, transport: uring}\n")
