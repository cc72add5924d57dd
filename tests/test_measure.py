"""Every workload family measured for real (integration: root, fio, real mounts, real programs),
at small sizes: one run of each family on native, plain FUSE, passthrough (keep and cache) and
bindfs, read back from the results folder it wrote. The session's logic on a fake host is in
test_session.py; the timeout and watchdog paths of measure are in test_runner.py; what a run may take
before it is stopped is a unit test here."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bench import leftovers, report
from bench.datafiles import data_dir, tree_digest
from bench.fusefs import mounts
from bench.host import Host
from bench.measure import TIMEOUT_MARGIN_S, timeout_of
from bench.results import RUNS, ResultsFolder
from bench.runner import RunOptions, run
from bench.scenario import PassthroughTarget, load_scenario, parse_scenario
from bench.targets import target_unavailable_reason
from bench.tracing import tracing_unavailable_reason

TREE = "{files: 120, dirs: 12, median_size: 2k, max_size: 64k}"
SCENARIO = f"""\
name: families
repeat: 1
seed: 3
targets:
  - {{name: native, type: native}}
  - {{name: fuse, type: fuse}}
  - {{name: passthrough, type: passthrough, fd_policy: keep}}
  - {{name: pt-cache, type: passthrough, fd_policy: cache}}
  - {{name: bind, type: external, command: [bindfs, -f, "{{source}}", "{{mountpoint}}"]}}
workloads:
  - {{name: create, ioengine: filecreate, nrfiles: 300, numjobs: 2, size: 4096}}
  - {{name: stat, ioengine: filestat, stat_type: lstat, nrfiles: 300, size: 4096}}
  - {{name: delete, ioengine: filedelete, nrfiles: 300, size: 4096}}
  - {{name: small, rw: read, bs: 4k, size: 1200k, nrfiles: 300, openfiles: 1, file_service_type: sequential}}
  - {{name: mmap, rw: randread, ioengine: mmap, bs: 4k, size: 4M, runtime: 1s}}
opens:
  - {{name: opens, files: 100, runtime: 500ms}}
programs:
  - {{name: find, program: find-stat, tree: {TREE}}}
  - {{name: untar, program: tar-extract, tree: {TREE}}}
  - {{name: status, program: git-status, tree: {TREE}}}
  - {{name: build, program: make, sources: 4, cache: cold}}
"""
TARGETS = ("native", "fuse", "passthrough", "pt-cache", "bind")
FUSE_TARGETS = TARGETS[1:]
BUILTIN = ("fuse", "passthrough", "pt-cache")


class Quiet(Host):
    """This machine, with what the runner says kept instead of printed."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One run of every family on every target (about 30 s), its results folder."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root and /dev/fuse")
    missing = [tool for tool in ("fio", "bindfs", "tar", "git", "make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    reason = target_unavailable_reason(PassthroughTarget(name="p", type="passthrough"))
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("families")
    (base / "s.yaml").write_text(SCENARIO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(leftovers.STATE_ENV, str(base / "state.json"))
        status = run(RunOptions(base / "s.yaml", out=base / "out", workdir=base / "work"), Quiet())
    left = [m.mountpoint for m in mounts.mounts() if m.is_fuse and m.mountpoint.startswith(str(base))]
    assert not left, f"mounts left behind: {left}"
    assert status == 0
    yield base


@pytest.fixture(scope="module")
def runs(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    """runs.csv as written, by (workload, target)."""
    with open(folder / "out" / RUNS, newline="") as handle:
        return {(row["workload"], row["target"]): row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def requests(folder: Path) -> pd.DataFrame:
    return ResultsFolder(folder / "out").requests()


def opcode(requests: pd.DataFrame, row: dict[str, str], name: str) -> int:
    """Requests of one opcode in one run (0 when none were counted)."""
    chosen = requests[(requests["run_id"] == row["run_id"]) & (requests["opcode"] == name)]
    return int(chosen["requests"].sum())


@pytest.mark.parametrize(("entry", "timeout"), [
    ("workloads: [{name: w, rw: read, size: 10G, runtime: 300s}]", 2 * 300 + TIMEOUT_MARGIN_S),
    ("workloads: [{name: w, rw: read, size: 1G, ramp_time: 60s, runtime: 120s, cache: warm}]",
     2 * 180 + TIMEOUT_MARGIN_S),
    ("workloads: [{name: w, ioengine: filecreate, nrfiles: 100000, size: 100000, runtime: 600s}]",
     2 * 600 + TIMEOUT_MARGIN_S),
    ("opens: [{name: o, runtime: 5s}]", 2 * 5 + TIMEOUT_MARGIN_S),
    ("programs: [{name: p, program: find-stat, timeout: 90s}]", 90),
])
def test_a_run_may_take_twice_its_runtime_and_ramp_plus_a_margin(entry: str, timeout: float) -> None:
    (cell,) = parse_scenario(f"name: t\ntargets: [{{name: n, type: native}}]\n{entry}\n").cells()
    assert timeout_of(cell) == timeout  # never the estimate: a slow target must not be cut short


@pytest.mark.integration
def test_every_family_ran_on_every_target(runs) -> None:
    workloads = {"create", "stat", "delete", "small", "mmap", "opens", "find", "untar", "status", "build"}
    assert set(runs) == {(w, t) for w in workloads for t in TARGETS}
    assert {row["status"] for row in runs.values()} == {"ok"}, [r["error"] for r in runs.values() if r["error"]]
    for (workload, target), row in runs.items():
        family = "opens" if workload == "opens" else "program" if workload in ("find", "untar", "status", "build") \
            else "fio"
        assert row["family"] == family and float(row["duration_s"]) > 0
        assert int(row["ops"]) > 0 and int(row["files"]) > 0, (workload, target)
        if target in BUILTIN:
            assert row["fuse_requests_source"] == "server"


@pytest.mark.integration
def test_every_target_started_every_workload_from_the_same_tree(folder: Path, runs) -> None:
    by_workload: dict[str, set[str]] = {}
    for (workload, _), row in runs.items():
        by_workload.setdefault(workload, set()).add(row["start_tree"])
    assert all(len(digests) == 1 and "" not in digests for digests in by_workload.values()), by_workload
    # The trees really were put back: the last run left them changed.
    scenario = load_scenario(folder / "s.yaml")
    cells = {cell.name: cell for cell in scenario.cells()}
    source = folder / "work" / "source"
    for name in ("create", "delete"):
        assert tree_digest(source / data_dir(cells[name])) != runs[(name, "native")]["start_tree"], name
    create_dir, delete_dir = source / data_dir(cells["create"]), source / data_dir(cells["delete"])
    assert len(os.listdir(create_dir)) == 300 and not [p for p in os.listdir(delete_dir) if p.startswith("f")]
    empty = folder / "empty" / create_dir.name
    empty.mkdir(parents=True)
    assert runs[("create", "fuse")]["start_tree"] == tree_digest(empty)  # create always started from nothing


@pytest.mark.integration
def test_metadata_engines_do_one_operation_per_file(runs, requests) -> None:
    for target in TARGETS:
        for workload, direction in (("create", "write"), ("stat", "read"), ("delete", "write")):
            row = runs[(workload, target)]
            assert int(row["ops"]) == 300 and float(row[f"{direction}_iops"]) > 0
            assert float(row[f"{direction}_clat_p50_us"]) > 0
    for target in BUILTIN:
        assert opcode(requests, runs[("create", target)], "CREATE") == 300
        assert opcode(requests, runs[("delete", target)], "UNLINK") == 300
        assert opcode(requests, runs[("stat", target)], "LOOKUP") >= 300  # cold: every file looked up


@pytest.mark.integration
def test_small_files_are_each_opened_once_and_passthrough_registers_each(runs, requests) -> None:
    for target in BUILTIN:
        row = runs[("small", target)]
        assert opcode(requests, row, "OPEN") == 300, target
        assert float(row["read_io_bytes"]) == 300 * 4096
    assert opcode(requests, runs[("small", "fuse")], "READ") >= 300
    for target in ("passthrough", "pt-cache"):
        row = runs[("small", target)]
        assert opcode(requests, row, "READ") == 0 and row["passthrough_engaged"] == "true"
        assert int(row["backing_opens"]) == 300  # first opens: nothing cached yet
    assert runs[("small", "fuse")]["backing_opens"] == "0"


@pytest.mark.integration
def test_mmap_reads_reach_the_plain_daemon_only(runs, requests) -> None:
    assert opcode(requests, runs[("mmap", "fuse")], "READ") > 0
    for target in ("passthrough", "pt-cache"):
        assert opcode(requests, runs[("mmap", target)], "READ") == 0
        assert float(runs[("mmap", target)]["read_iops"]) > 0


@pytest.mark.integration
def test_open_close_loops_time_every_open_and_a_cached_backing_id_skips_backing_open(folder: Path, runs,
                                                                                      requests) -> None:
    for target in TARGETS:
        row = runs[("opens", target)]
        assert float(row["ops_per_s"]) > 0 and 0 < float(row["op_p50_us"]) <= float(row["op_p99_us"])
        assert (folder / "out" / "opens" / f"{row['run_id']}.json").is_file()
    keep, cache = runs[("opens", "passthrough")], runs[("opens", "pt-cache")]
    assert opcode(requests, keep, "OPEN") == int(keep["ops"]) == int(keep["backing_opens"])
    assert opcode(requests, cache, "OPEN") == int(cache["ops"]) > 100
    assert int(cache["backing_opens"]) <= 100  # each of the 100 files registered at most once


@pytest.mark.integration
def test_programs_run_through_every_target_with_their_requests_counted(runs, requests) -> None:
    for target in BUILTIN:
        assert opcode(requests, runs[("find", target)], "READDIRPLUS") + \
            opcode(requests, runs[("find", target)], "READDIR") > 0
        assert opcode(requests, runs[("untar", target)], "CREATE") >= 120
        assert opcode(requests, runs[("status", target)], "LOOKUP") > 0
        assert opcode(requests, runs[("build", target)], "CREATE") >= 4  # objects and the program
    assert opcode(requests, runs[("untar", "fuse")], "WRITE") > 0
    assert opcode(requests, runs[("untar", "passthrough")], "WRITE") == 0
    for target in TARGETS:
        row = runs[("build", target)]
        assert float(row["fio_cpu_user_s"]) + float(row["fio_cpu_sys_s"]) > 0  # gcc's CPU, reaped by make
        assert row["program"] == "make"
    if tracing_unavailable_reason() is None:
        assert runs[("untar", "bind")]["fuse_requests_source"] == "tracepoint"
        assert opcode(requests, runs[("untar", "bind")], "CREATE") >= 120


@pytest.mark.integration
def test_the_report_has_a_section_per_family(folder: Path) -> None:
    text = report.render(report.analyse_folder(folder / "out"), "text")
    sections = [line for line in text.splitlines() if line.startswith("[")]
    assert sections == ["[small files]", "[mmap]", "[metadata]", "[open/close]", "[programs]"]
    assert "find (s)" in text and "opens (opens/s)" in text and "create (ops/s)" in text
    assert "FUSE requests per operation" in text and "Passthrough vs fuse, per section:" in text
    for fmt in report.FORMATS:
        assert report.write_report(folder / "out", folder / f"r.{fmt}", fmt).stat().st_size > 0


@pytest.mark.integration
def test_the_manifest_keeps_the_environment_each_target_and_every_command(folder: Path, runs) -> None:
    results = ResultsFolder(folder / "out")
    manifest = results.manifest()
    env = manifest.environment
    assert env["kernel"]["cmdline"] and env["fuse"]["config"]["CONFIG_FUSE_PASSTHROUGH"] == "y"
    assert env["workdir"]["mount"]["fs_type"] and "enable_uring" in env["fuse"]["parameters"]
    assert manifest.targets["passthrough"]["init"]["protocol"].startswith("7.")
    assert "PASSTHROUGH" in manifest.targets["passthrough"]["init"]["flags"]
    assert "PASSTHROUGH" not in manifest.targets["fuse"]["init"]["flags"]
    assert manifest.targets["bind"]["argv"][0] == "bindfs" and manifest.targets["bind"]["version"]
    commands = dict(zip(results.commands()["run_id"], results.commands()["argv"]))
    assert set(commands) == {row["run_id"] for row in runs.values()}
    assert json.loads(commands[runs[("stat", "fuse")]["run_id"]])[:1] == ["fio"]
    assert "--stat_type=lstat" in json.loads(commands[runs[("stat", "fuse")]["run_id"]])
    assert json.loads(commands[runs[("find", "native")]["run_id"]])[0].endswith("find")
    if env["workdir"]["device"]:  # a block device under the work directory: its counters moved
        created = runs[("create", "native")]
        assert created["dev_writes"] != "" and int(created["dev_write_bytes"]) >= 0
