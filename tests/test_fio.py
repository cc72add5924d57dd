"""bench.fio: the argv allow-list and real runs."""

import json
import os
import time
from pathlib import Path

import pytest

from bench.datafiles import prepare_files
from bench.fio import (
    ALLOWED_OPTIONS,
    FioError,
    FioProcess,
    build_argv,
    check_argv,
    fio_version,
    hugepages_needed,
)
from bench.fio_logs import KINDS, LOG_OPTIONS, read_log
from bench.scenario import ScenarioError, WorkloadCell, parse_scenario
from bench.system import hugepages
from bench.vocabulary import IOENGINES

needs_fio = pytest.mark.skipif(fio_version() is None, reason="fio is not installed")


def run_fio(argv: list[str], timeout: float):
    """Run fio to the end (stopped on every path) and parse its output."""
    process = FioProcess(argv)
    try:
        return process.wait(timeout)
    finally:
        process.stop()


def scenario_text(workload: str) -> str:
    return f"name: t\ntargets: [{{name: n, type: native}}]\nworkloads:\n  - {{name: w, {workload}}}\n"


def cell(workload: str = "rw: randread, bs: 4k, size: 64k, runtime: 1s") -> WorkloadCell:
    (only,) = parse_scenario(scenario_text(workload)).cells()
    return only


def prepared(c: WorkloadCell, mount: Path) -> list[Path]:
    """The cell's files as fio sees them through `mount` (here: the source dir itself)."""
    return [mount / rel for rel in prepare_files(c, mount)]


def options(argv: list[str]) -> dict[str, str | None]:
    return {arg[2:].partition("=")[0]: (arg.partition("=")[2] if "=" in arg else None) for arg in argv[1:]}


# ---------------------------------------------------------------- argv


def test_argv_uses_only_allowed_options_and_generated_paths(tmp_path):
    c = cell("rw: randrw, rwmixread: 70, bs: 4k, size: 96k, nrfiles: 3, openfiles: 2, numjobs: 2, "
             "ioengine: libaio, iodepth: 8, direct: true, runtime: 1500ms, ramp_time: 1s, fsync: 4, end_fsync: true")
    mount = tmp_path / "mnt"
    mount.mkdir()
    argv = build_argv(c, prepared(c, mount), tmp_path / "out.json")
    opts = options(argv)
    assert argv[0] == "fio" and set(opts) <= ALLOWED_OPTIONS
    assert all(arg.startswith("--") and "\n" not in arg for arg in argv[1:])
    directory = Path(opts["directory"])
    assert directory.is_relative_to(mount) and sorted(p.name for p in directory.iterdir() if p.name.startswith("f")) == ["f0", "f1", "f2"]
    assert opts | {"directory": None} == {
        "name": "w", "directory": None, "filename_format": "f$filenum", "nrfiles": "3", "openfiles": "2", "size": str(3 * 32768),
        "rw": "randrw", "rwmixread": "70", "bs": "4096", "ioengine": "libaio", "iodepth": "8", "direct": "1",
        "numjobs": "2", "runtime": "1500ms", "time_based": None, "ramp_time": "1000ms", "fsync": "4",
        "end_fsync": "1", "invalidate": "0", "allow_file_create": "0", "group_reporting": None,
        "output-format": "json+", "output": str(tmp_path / "out.json"),
    }


def test_defaults_leave_optional_options_out(tmp_path):
    c = cell()
    opts = options(build_argv(c, prepared(c, tmp_path), tmp_path / "o.json"))
    assert not {"openfiles", "rwmixread", "ramp_time", "fsync", "end_fsync"} & set(opts)
    assert opts["direct"] == "0" and opts["ioengine"] == "psync"


@pytest.mark.parametrize(("workload", "interval"), [
    ("rw: read, runtime: 1s", "100"),              # auto: a 20th of the run, at least 100 ms
    ("rw: read, runtime: 5s", "250"),
    ("rw: read, runtime: 4s, ramp_time: 1s", "250"),
    ("rw: read, runtime: 60s", "1000"),            # ... and at most 1 s
    ("rw: read, runtime: 60s, log_interval: 200ms", "200"),
    ("rw: read, log_interval: 0", None),           # no logs
])
def test_logs_are_asked_for_at_the_workloads_interval_under_the_tools_prefix(tmp_path, workload, interval):
    c = cell(f"{workload}, size: 64k")
    opts = options(build_argv(c, prepared(c, tmp_path), tmp_path / "o.json", tmp_path / "run"))
    logs = {key: opts.get(key) for key in (*LOG_OPTIONS, "log_avg_msec")}
    if interval is None:
        assert set(logs.values()) == {None}
    else:
        assert logs == {**dict.fromkeys(LOG_OPTIONS, str(tmp_path / "run")), "log_avg_msec": interval}
    assert not set(LOG_OPTIONS) & set(options(build_argv(c, prepared(c, tmp_path), tmp_path / "o.json")))


def test_log_prefixes_fio_would_interpret_or_misplace_are_refused(tmp_path):
    c = cell()
    with pytest.raises(FioError, match="refusing fio path"):
        build_argv(c, prepared(c, tmp_path), tmp_path / "o.json", tmp_path / "run:1")
    with pytest.raises(FioError, match="No such file"):
        build_argv(c, prepared(c, tmp_path), tmp_path / "o.json", tmp_path / "missing" / "run")
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FioError, match="symlink"):
        build_argv(c, prepared(c, tmp_path), tmp_path / "o.json", tmp_path / "linked")


@pytest.mark.parametrize("log", ["write_bw_log=/dev/shm/x", "write_lat_log=logs/x", "write_iops_log=/tmp/a b"])
def test_check_argv_refuses_log_paths_off_the_rules(log):
    with pytest.raises(FioError, match="^refusing"):
        check_argv(["fio", "--directory=/tmp", "--filename_format=f$filenum", "--output=/tmp/o.json", f"--{log}"])


def test_hugepage_buffers_ask_fio_for_shm_huge_pages(tmp_path):
    c = cell("rw: read, bs: 1M, size: 4M, direct: true, buffers: hugepages")
    assert options(build_argv(c, prepared(c, tmp_path), tmp_path / "o"))["mem"] == "shmhuge"
    assert "mem" not in options(build_argv(cell(), prepared(cell(), tmp_path), tmp_path / "o"))


@pytest.mark.parametrize(("workload", "pages"), [
    ("bs: 4k", 3),
    ("bs: 1M, iodepth: 4, ioengine: libaio", 4),  # fio 3.33 fails with 3
    ("bs: 1M, iodepth: 32, ioengine: libaio", 18),  # and with 17
    ("bs: 1M, numjobs: 3", 9),
])
def test_hugepages_needed_covers_every_jobs_buffer(workload, pages):
    assert hugepages_needed(cell(f"rw: read, size: 4M, {workload}")) == pages


def test_size_is_whole_files_whatever_numjobs(tmp_path):
    one, four = cell("rw: read, bs: 4k, size: 1M, nrfiles: 3"), cell("rw: read, bs: 4k, size: 1M, nrfiles: 3, numjobs: 4")
    assert options(build_argv(one, prepared(one, tmp_path), tmp_path / "o"))["size"] == str(3 * 85 * 4096)
    assert options(build_argv(four, prepared(four, tmp_path), tmp_path / "o"))["size"] == str(3 * 85 * 4096)


@pytest.mark.parametrize("bad", ["a:b", "dollar$HOME", "per%cent", "eq=ual", "sp ace", "new\nline"])
def test_paths_fio_would_interpret_are_refused(tmp_path, bad):
    path = tmp_path / bad
    path.write_bytes(bytes(65536))
    with pytest.raises(FioError, match="refusing fio path"):
        build_argv(cell(), [path], tmp_path / "o.json")
    with pytest.raises(FioError, match="refusing fio path"):
        build_argv(cell(), prepared(cell(), tmp_path), tmp_path / f"o{bad}.json")


def test_symlinks_are_refused(tmp_path):
    c = cell()
    (real,) = prepared(c, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(FioError, match="symlink"):
        build_argv(c, [link], tmp_path / "o.json")
    linked_dir = tmp_path / "linked"
    linked_dir.symlink_to(real.parent)
    with pytest.raises(FioError, match="symlink"):
        build_argv(c, [linked_dir / real.name], tmp_path / "o.json")
    (tmp_path / "out-link").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(FioError, match="symlink"):
        build_argv(c, [real], tmp_path / "out-link")


@pytest.mark.parametrize("path", ["/dev/null", "/dev/vda", "/proc/self/mem", "/sys/kernel/notes"])
def test_devices_and_kernel_files_are_refused(tmp_path, path):
    with pytest.raises(FioError, match="never touches devices"):
        build_argv(cell(), [Path(path)], tmp_path / "o.json")


def test_relative_missing_and_non_regular_files_are_refused(tmp_path):
    (data,) = prepared(cell(), tmp_path)
    with pytest.raises(FioError, match="not canonical"):
        build_argv(cell(), [tmp_path / "fusebench-data" / ".." / data.relative_to(tmp_path)], tmp_path / "o.json")
    with pytest.raises(FioError, match="not absolute"):
        build_argv(cell(), [Path("data/f0")], tmp_path / "o.json")
    with pytest.raises(FioError, match="No such file"):
        build_argv(cell(), [tmp_path / "missing"], tmp_path / "o.json")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FioError, match="not a regular file"):
        build_argv(cell(), [tmp_path / "fifo"], tmp_path / "o.json")
    with pytest.raises(FioError, match="needs 1 files, got 2"):
        build_argv(cell(), [tmp_path / "a", tmp_path / "b"], tmp_path / "o.json")


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "fio --name=x"],
        ["fio", "--exec_prerun=touch /tmp/x"],
        ["fio", "--name=x", "--ioengine=external:/tmp/evil.so"],
        ["fio", "--name=x\n[evil]"],
        ["fio", "--name=x=y"],
        ["fio", "--directory=/tmp", "--filename_format=$HOME", "--output=/tmp/o.json"],
        ["fio", "--directory=/tmp", "--filename_format=/etc/passwd", "--output=/tmp/o.json"],
        ["fio", "--filename=/tmp/f", "--output=/tmp/o.json"],
        ["fio", "job.fio"],
        ["fio", "--output=/tmp/o json"],
        ["fio", "--directory=/tmp", "--filename_format=f$filenum", "--ioengine=sg", "--output=/tmp/o.json"],
        ["fio", "--directory=/dev", "--filename_format=f$filenum", "--output=/tmp/o.json"],
        ["fio", "--directory=/tmp", "--filename_format=f$filenum", "--output=/dev/vda"],
        ["fio", "--directory=data", "--filename_format=f$filenum", "--output=/tmp/o.json"],
        ["fio", "--name=x", "--output=/tmp/o.json"],
        ["fio", "--directory=/tmp", "--filename_format=f$filenum"],
    ],
    ids=["shell", "exec_prerun", "external-engine", "newline", "equals", "dollar", "format-path", "filename",
         "job-file", "space", "device-engine", "device", "device-output", "relative", "no-directory", "no-output"],
)
def test_check_argv_and_starting_fio_refuse_anything_off_the_list(argv):
    with pytest.raises(FioError, match="^refusing"):
        check_argv(argv)
    with pytest.raises(FioError):
        FioProcess(argv)  # refused before any process starts


FORBIDDEN_KEYS = [
    "exec_prerun", "exec_postrun", "trigger", "trigger-file", "server", "client", "filename", "directory",
    "filename_format", "opendir", "lockfile", "read_iolog", "write_iolog", "replay_redirect", "merge_blktrace_file",
    "write_bw_log", "write_lat_log", "write_iops_log", "write_hist_log", "verify_state_save", "verify_state_load",
    "mem", "unlink", "allow_mounted_write", "uid", "gid", "prioclass", "nice", "cgroup", "ioscheduler",
    "cpus_allowed", "include",
]


@pytest.mark.parametrize("key", FORBIDDEN_KEYS)
def test_forbidden_fio_options_cannot_be_written_in_a_scenario(key):
    with pytest.raises(ScenarioError, match=f"unknown key '{key}'"):
        parse_scenario(scenario_text(f"rw: read, {key}: x"))
    assert key not in WorkloadCell.model_fields


@pytest.mark.parametrize(
    "engine",
    ["exec", "external", "external:/tmp/x.so", "/tmp/x.so", "sg", "io_uring_cmd", "nvme", "libzbc", "mtd", "dev-dax",
     "nbd", "net", "netsplice", "rdma", "http", "rados", "rbd", "nfs", "libiscsi", "gfapi", "dfs", "xnvme",
     "libcufile", "e4defrag", "splice", "null", "filedelete:x", "dircreate"],
)
def test_unsafe_engines_cannot_be_written_in_a_scenario(engine):
    with pytest.raises(ScenarioError, match="ioengine"):
        parse_scenario(scenario_text(f"rw: read, ioengine: '{engine}'"))


@pytest.mark.parametrize("name", ["'w:x'", "'w$x'", "'w%x'", "'w=x'", "'w x'", "'${HOME}'", "'-w'"])
def test_job_names_fio_would_interpret_are_refused(name):
    with pytest.raises(ScenarioError, match="name"):
        parse_scenario(f"name: t\ntargets: [{{name: n, type: native}}]\nworkloads:\n  - {{name: {name}, rw: read}}\n")


def test_every_scenario_engine_is_safe():
    assert set(WorkloadCell.model_fields["ioengine"].annotation.__args__) <= set(IOENGINES)


# ---------------------------------------------------------------- real fio


@needs_fio
def test_fio_version():
    assert fio_version().startswith("fio-")


@pytest.mark.integration
@needs_fio
def test_real_fio_run_through_build_argv(tmp_path):
    c = cell("rw: randrw, rwmixread: 50, bs: 4k, size: 1M, nrfiles: 2, numjobs: 2, runtime: 1s, end_fsync: true, cache: warm")
    files = prepared(c, tmp_path)
    before = [f.stat().st_size for f in files]
    output = tmp_path / "run.json"
    result = run_fio(build_argv(c, files, output), timeout=30)
    assert result.version == fio_version() and result.jobs == 1  # group_reporting
    assert result.read.total_ios > 0 and result.write.total_ios > 0
    assert result.read.clat_p50_us > 0 and sum(result.read.clat_bins.values()) == result.read.total_ios
    assert 0.9 <= result.runtime_s <= 2.0
    assert json.loads(output.read_text())["jobs"][0]["job options"]["rw"] == "randrw"  # raw output kept
    assert [f.stat().st_size for f in files] == before  # fio wrote inside the prepared files only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusebench-data", "run.json"]


@pytest.mark.integration
@needs_fio
def test_real_fio_writes_a_log_per_job_and_kind_that_adds_up_to_its_result(tmp_path):
    c = cell("rw: read, bs: 4k, size: 1M, numjobs: 2, runtime: 1s, cache: warm, log_interval: 200ms")
    files = prepared(c, tmp_path)
    (tmp_path / "logs").mkdir()
    result = run_fio(build_argv(c, files, tmp_path / "run.json", tmp_path / "logs" / "run"), timeout=30)
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == sorted(f"run_{kind}.{job}.log" for kind in KINDS for job in (1, 2))
    bw, iops = read_log(tmp_path / "logs" / "run", "bw"), read_log(tmp_path / "logs" / "run", "iops")
    assert bw.jobs == iops.jobs == 2 and bw.damaged == iops.damaged == []
    assert 4 <= len(bw.t_s) <= 6 and all(0.15 <= t <= 1.1 for t in bw.t_s)
    # The mean of the steps is the run's rate (the last, partial window aside).
    assert sum(bw.value[:4]) / 4 == pytest.approx(result.read.bw_mib_s, rel=0.25)
    assert sum(iops.value[:4]) / 4 == pytest.approx(result.read.iops, rel=0.25)
    assert read_log(tmp_path / "logs" / "run", "clat").unit == "us"


@pytest.mark.integration
@needs_fio
def test_real_fio_runs_on_huge_page_buffers(require_root, tmp_path):
    c = cell("rw: read, bs: 1M, size: 8M, direct: true, runtime: 1s, buffers: hugepages, iodepth: 4, ioengine: libaio")
    files = prepared(c, tmp_path)
    with hugepages(hugepages_needed(c)):
        result = run_fio(build_argv(c, files, tmp_path / "run.json"), timeout=30)
    assert result.read.total_ios > 0
    job = json.loads((tmp_path / "run.json").read_text())["jobs"][0]["job options"]
    assert job["mem"] == "shmhuge"


@pytest.mark.integration
@needs_fio
def test_real_fio_reads_thousands_of_prepared_files(tmp_path):
    # A colon-joined --filename list of this many paths is over fio's 4 KiB option limit.
    c = cell("rw: read, bs: 4k, size: 8000k, nrfiles: 2000")
    files = prepared(c, tmp_path)
    result = run_fio(build_argv(c, files, tmp_path / "run.json"), timeout=60)
    assert result.read.io_bytes == 2000 * 4096  # one pass (cold, buffered) over every file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusebench-data", "run.json"]


@pytest.mark.integration
@needs_fio
def test_real_fio_timeout_stops_fio_and_its_jobs(tmp_path):
    c = cell("rw: read, bs: 4k, size: 64k, numjobs: 2, runtime: 30s, cache: warm")
    argv = build_argv(c, prepared(c, tmp_path), tmp_path / "o.json")
    started = time.monotonic()
    with pytest.raises(FioError, match="did not finish within 1 s"):
        run_fio(argv, timeout=1)
    assert time.monotonic() - started < 10
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_our_fio(p, tmp_path)]


def _is_our_fio(proc: Path, tmp_path: Path) -> bool:
    try:
        return str(tmp_path) in (proc / "cmdline").read_text()
    except OSError:
        return False


@pytest.mark.integration
@needs_fio
def test_real_fio_failure_becomes_fio_error(tmp_path):
    c = cell()
    (data,) = prepared(c, tmp_path)
    argv = build_argv(c, [data], tmp_path / "o.json")
    data.unlink()  # gone before fio starts, and allow_file_create=0 forbids recreating it
    with pytest.raises(FioError, match="fio"):
        run_fio(argv, timeout=30)
    assert not data.exists()


@pytest.mark.parametrize(
    ("spec", "loops"),
    [("rw: read, cache: cold", False), ("rw: read, cache: warm", True), ("rw: randread, direct: true", True),
     ("ioengine: filestat, size: 4k, nrfiles: 4", False), ("ioengine: filestat, size: 4k, nrfiles: 4, cache: warm", True),
     ("ioengine: filedelete, size: 4k, nrfiles: 4", False), ("ioengine: filecreate, size: 4k, nrfiles: 4", False)],
)
def test_only_runs_that_cannot_hit_their_own_cache_loop(tmp_path, spec, loops):
    c = cell(spec)
    opts = options(build_argv(c, prepared(c, tmp_path), tmp_path / "o.json"))
    assert ("time_based" in opts) is loops


# ---------------------------------------------------------------- metadata engines


def test_metadata_engines_take_their_direction_one_file_per_operation_and_their_options(tmp_path):
    c = cell("ioengine: filestat, stat_type: statx, size: 40k, nrfiles: 10, file_service_type: sequential")
    opts = options(build_argv(c, prepared(c, tmp_path), tmp_path / "o.json"))
    assert (opts["rw"], opts["bs"], opts["size"], opts["nrfiles"]) == ("read", "4096", "40960", "10")
    assert (opts["stat_type"], opts["file_service_type"], opts["allow_file_create"]) == ("statx", "sequential", "0")
    tiny = cell("ioengine: filecreate, size: 10000, nrfiles: 10000")
    opts = options(build_argv(tiny, prepared(tiny, tmp_path), tmp_path / "o.json"))
    assert (opts["bs"], opts["size"]) == ("1", "10000")  # one operation per file, whatever its size


def test_filecreate_starts_from_an_empty_directory_and_names_the_files_to_create(tmp_path):
    c = cell("ioengine: filecreate, size: 4k, nrfiles: 4")
    files = prepared(c, tmp_path)
    assert not any(f.exists() for f in files) and files[0].parent.is_dir()
    assert options(build_argv(c, files, tmp_path / "o.json"))["rw"] == "write"


@pytest.mark.integration
@needs_fio
@pytest.mark.parametrize(("engine", "exist_after"), [("filecreate", True), ("filestat", True), ("filedelete", False)])
def test_real_metadata_engines_do_one_operation_per_file(tmp_path, engine, exist_after):
    c = cell(f"ioengine: {engine}, size: 5000, nrfiles: 500")
    files = prepared(c, tmp_path)
    result = run_fio(build_argv(c, files, tmp_path / "run.json"), timeout=60)
    counted = result.read if engine == "filestat" else result.write
    assert counted.total_ios == 500 and counted.clat_p50_us > 0
    assert all(f.exists() == exist_after for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusebench-data", "run.json"]
    if engine == "filedelete":
        assert prepare_files(c, tmp_path) and all(f.stat().st_size == 10 for f in files)  # the next run finds them again


def test_metadata_engines_split_the_files_over_the_jobs(tmp_path):
    c = cell("ioengine: filestat, size: 40k, nrfiles: 10, numjobs: 2")
    files = prepared(c, tmp_path)
    assert [f.name for f in files[:2]] + [f.name for f in files[-1:]] == ["f0.0", "f0.1", "f1.4"]
    opts = options(build_argv(c, files, tmp_path / "o.json"))
    assert (opts["nrfiles"], opts["size"], opts["filename_format"]) == ("5", "20480", "f$jobnum.$filenum")


def test_metadata_engines_need_nrfiles_a_multiple_of_numjobs():
    with pytest.raises(ScenarioError, match="not a multiple of numjobs 3"):
        cell("ioengine: filecreate, size: 40k, nrfiles: 10, numjobs: 3")


@pytest.mark.integration
@needs_fio
def test_real_filecreate_jobs_create_their_own_files(tmp_path):
    c = cell("ioengine: filecreate, size: 5000, nrfiles: 1000, numjobs: 2")
    files = prepared(c, tmp_path)
    result = run_fio(build_argv(c, files, tmp_path / "run.json"), timeout=60)
    assert result.write.total_ios == 1000 and all(f.exists() for f in files)
    assert len(list(files[0].parent.iterdir())) == 1000
