"""The record types of the results folder, each field declared once with its type and meaning.

A record's fields are its file's columns, in order: runs.csv (RunRecord, in sections that
each producer fills: the runner, the workload, fio, the monitor, the request counter),
samples.csv (SampleRecord), requests.csv (RequestRecord), fd_pressure.csv
(FdPressureRecord) and fd_pressure_snapshots.csv (SnapshotRecord). The readers in
bench.results derive column types from them, and the README's tables are generated from
their descriptions (bench.docs). Empty CSV cells mean "does not apply".
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from bench.fio_output import FioResult
from bench.fusefs.units import format_size
from bench.scenario import Cell
from bench.transport import TRANSPORTS
from bench.vocabulary import FAMILIES, FIO, PATTERNS

# 2: requests.csv, fd-pressure snapshots and client reports. 3: workload families (runs.csv's
# kind and work columns, at the end; opens/). 4: the environment, commands.csv, device counters.
# 5: fio's bandwidth, IOPS and latency logs (fio_logs/). 6: the FUSE transport (runs.csv's
# transport and ring_requests, at the end; the manifest's enable_uring). 7: fd pressure at scale
# (fd_pressure.csv's clients, release, idle, slab and limit columns; more snapshot phases).
FORMAT_VERSION = 7

# Statuses of a run (runs.csv `status`), an fd-pressure step, and of a whole results folder.
STATUS_OK, STATUS_FAILED, STATUS_UNAVAILABLE = "ok", "failed", "unavailable"
Status = Literal["ok", "failed", "unavailable"]
FOLDER_RUNNING, FOLDER_INTERRUPTED, FOLDER_COMPLETE = "running", "interrupted", "complete"
FolderStatus = Literal["running", "interrupted", "complete"]
REQUIRED = ...


def column(doc: str, default: Any = None) -> Any:
    """A field that is a column: its default (None: an empty cell; REQUIRED: none) and what it means."""
    return Field(default=default, description=doc)


class Record(BaseModel):
    """A row of one results file; its fields are the file's columns, in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The file's columns."""
        return tuple(cls.model_fields)

    def row(self) -> dict[str, Any]:
        """The record as a column -> value mapping."""
        return self.model_dump()

    def changed(self, **changes: Any) -> Self:
        """A copy with `changes`, validated like the original."""
        return type(self).model_validate({**self.model_dump(), **changes})


# ---------------------------------------------------------------- runs.csv, in sections


class RunInfo(Record):
    """Which run this is and how it ended (the runner)."""

    run_id: str = column("`<cell>--<target>--r<repetition>`", REQUIRED)
    workload: str | None = column("workload name as written in the scenario")
    cell: str | None = column("workload plus sweep values, e.g. `randread-4k_iodepth-32`")
    sweep: str | None = column("JSON object of this cell's swept values (`{}` when none)")
    target: str | None = column("target name")
    target_type: str | None = column("`native`, `fuse`, `passthrough` or `external`")
    repetition: int | None = column("1..repeat")
    order: int | None = column("position of the run in the whole plan (0-based), for drift analysis")
    started_at: str | None = column("UTC, ISO 8601")
    duration_s: float | None = column("wall time of the measured fio run (without cache preparation)")
    status: Status = column("`ok`, `failed` or `unavailable`", REQUIRED)
    error: str | None = column("why, when status is not `ok`")


class WorkloadAsRun(Record):
    """The workload as run, so that reports need not re-read the scenario."""

    rw: str | None = column("fio's `rw` pattern")
    bs: str | None = column("block size, as a fio size (`4k`, `1M`)")
    iodepth: int | None = column("queue depth")
    ioengine: str | None = column("fio ioengine")
    direct: bool | None = column("O_DIRECT")
    numjobs: int | None = column("fio jobs")
    nrfiles: int | None = column("data files")
    cache: str | None = column("`cold` or `warm`")

    @classmethod
    def of(cls, cell: Cell) -> WorkloadAsRun:
        """The columns of a cell (fio's keys only for fio cells)."""
        if cell.family != FIO:
            return cls(cache=cell.cache)
        return cls(rw=cell.rw, bs=format_size(cell.bs), iodepth=cell.iodepth, ioengine=cell.ioengine,
                   direct=cell.direct, numjobs=cell.numjobs, nrfiles=cell.nrfiles, cache=cell.cache)


_DIRECTION_FIGURES = {  # suffix -> what it means (read_... and write_... columns)
    "bw_mib_s": "bandwidth, MiB/s",
    "iops": "I/O operations per second",
    "io_bytes": "bytes moved in the measured time",
    "clat_mean_us": "completion latency, mean, microseconds",
    "clat_p50_us": "completion latency, median, microseconds",
    "clat_p99_us": "completion latency, 99th percentile, microseconds",
    "clat_p999_us": "completion latency, 99.9th percentile, microseconds",
    "lat_mean_us": "total latency (submission + completion), mean, microseconds",
}


class FioFigures(Record):
    """fio's own figures of the run (from its json+ output)."""

    read_bw_mib_s: float | None = column("reads: " + _DIRECTION_FIGURES["bw_mib_s"])
    read_iops: float | None = column("reads: " + _DIRECTION_FIGURES["iops"])
    read_io_bytes: int | None = column("reads: " + _DIRECTION_FIGURES["io_bytes"])
    read_clat_mean_us: float | None = column("reads: " + _DIRECTION_FIGURES["clat_mean_us"])
    read_clat_p50_us: float | None = column("reads: " + _DIRECTION_FIGURES["clat_p50_us"])
    read_clat_p99_us: float | None = column("reads: " + _DIRECTION_FIGURES["clat_p99_us"])
    read_clat_p999_us: float | None = column("reads: " + _DIRECTION_FIGURES["clat_p999_us"])
    read_lat_mean_us: float | None = column("reads: " + _DIRECTION_FIGURES["lat_mean_us"])
    write_bw_mib_s: float | None = column("writes: " + _DIRECTION_FIGURES["bw_mib_s"])
    write_iops: float | None = column("writes: " + _DIRECTION_FIGURES["iops"])
    write_io_bytes: int | None = column("writes: " + _DIRECTION_FIGURES["io_bytes"])
    write_clat_mean_us: float | None = column("writes: " + _DIRECTION_FIGURES["clat_mean_us"])
    write_clat_p50_us: float | None = column("writes: " + _DIRECTION_FIGURES["clat_p50_us"])
    write_clat_p99_us: float | None = column("writes: " + _DIRECTION_FIGURES["clat_p99_us"])
    write_clat_p999_us: float | None = column("writes: " + _DIRECTION_FIGURES["clat_p999_us"])
    write_lat_mean_us: float | None = column("writes: " + _DIRECTION_FIGURES["lat_mean_us"])
    fio_usr_cpu_pct: float | None = column("fio's own user CPU, percent of its runtime (the daemon is not in it)")
    fio_sys_cpu_pct: float | None = column("fio's own system CPU, percent of its runtime")
    fio_ctx: int | None = column("fio's context switches")
    fio_runtime_s: float | None = column("fio's measured runtime")

    @classmethod
    def of(cls, result: FioResult, rw: str) -> FioFigures:
        """The figures of `result`; a direction the pattern does not use stays empty."""
        pattern = PATTERNS[rw]
        values: dict[str, Any] = {}
        for prefix, direction, used in (("read", result.read, pattern.reads),
                                        ("write", result.write, pattern.writes)):
            if used:
                values.update({f"{prefix}_{name}": getattr(direction, name) for name in _DIRECTION_FIGURES})
        return cls(**values, fio_usr_cpu_pct=result.usr_cpu, fio_sys_cpu_pct=result.sys_cpu,
                   fio_ctx=result.ctx, fio_runtime_s=result.runtime_s)


class MonitorSummary(Record):
    """What the monitor saw over the fio run (aggregates of samples.csv)."""

    fio_cpu_user_s: float | None = column("user CPU seconds of the workload's processes (fio, or the program, "
                                          "with every process they started: the kernel's account once reaped)")
    fio_cpu_sys_s: float | None = column("system CPU seconds of the workload's processes (as `fio_cpu_user_s`)")
    daemon_cpu_user_s: float | None = column("user CPU seconds of the FUSE daemon during the run")
    daemon_cpu_sys_s: float | None = column("system CPU seconds of the FUSE daemon during the run")
    daemon_fds_max: int | None = column("most open fds the daemon had during the run")
    daemon_rss_max_kib: int | None = column("the daemon's peak resident memory, KiB")
    system_cpu_user_s: float | None = column("user CPU seconds of the whole machine, summed over CPUs")
    system_cpu_sys_s: float | None = column("system CPU seconds of the whole machine, summed over CPUs")
    system_cpu_iowait_s: float | None = column("iowait seconds of the whole machine, summed over CPUs")
    file_nr_max: int | None = column("most allocated file handles system-wide (`/proc/sys/fs/file-nr`)")
    sampler_cpu_s: float | None = column("CPU the monitor itself used")
    samples: int | None = column("number of monitor samples taken")


class RequestTotals(Record):
    """FUSE requests the daemon received during the measured run (per opcode: requests.csv)."""

    fuse_read_requests: int | None = column("READ requests the daemon received during the measured run")
    fuse_write_requests: int | None = column("WRITE requests the daemon received during the measured run")
    fuse_other_requests: int | None = column("every other request (LOOKUP, GETATTR, OPEN, FLUSH, ...) during the "
                                             "measured run")
    fuse_requests_source: str | None = column(
        "`server` (the built-in server's own counters), `tracepoint` (kernel `fuse:fuse_request_send` "
        "counts, for external servers) or empty (not counted)")
    passthrough_engaged: bool | None = column(
        "`true` when no READ or WRITE reached the daemon, else `false`: passthrough targets, and external ones in "
        "fio runs whose data had to reach the files, judged on those requests only (READ: cold cache or direct I/O; "
        "WRITE: direct I/O or fsync); empty otherwise")

    @classmethod
    def of(cls, deltas: dict[str, int], source: str, target_type: str,
           uncached: Collection[str] = ()) -> RequestTotals:
        """Totals of per-opcode request counts of one run; `uncached`: the data opcodes (READ,
        WRITE) of what the run moved that no cache could absorb, whose counts show whether an
        external server's passthrough engaged."""
        reads, writes = deltas.get("READ", 0), deltas.get("WRITE", 0)
        judged = ("READ", "WRITE") if target_type == "passthrough" else uncached if target_type == "external" else ()
        return cls(fuse_read_requests=reads, fuse_write_requests=writes,
                   fuse_other_requests=sum(deltas.values()) - reads - writes, fuse_requests_source=source,
                   passthrough_engaged=not any(deltas.get(op, 0) for op in judged) if judged else None)


class TargetSettings(Record):
    """Built-in server settings of the target."""

    fd_policy: str | None = column("`keep`, `close` or `cache` (passthrough targets)")
    xattr: str | None = column("`on` or `off` (built-in targets)")


class WorkloadKind(Record):
    """Which family the workload is of, and the state its files were in when the run started."""

    family: Literal[FAMILIES] | None = column(
        "`fio` (block I/O, small files, mmap, metadata engines), `opens` (open/close loop) or `program` "
        "(from the catalog); empty in folders of formats 1 and 2 (all fio)")
    program: str | None = column("the catalog program of a `program` run")
    start_tree: str | None = column("digest of the names and sizes of the workload's files when the measured run "
                                    "started: the same for every target, or the targets did not start alike")


class WorkFigures(Record):
    """How much a run did, for every family (requests per operation, per file, per MiB derive from it)."""

    ops: int | None = column("operations done: fio's I/Os (a create, stat or unlink each for metadata engines), "
                             "opens of an open/close loop, 1 for a program")
    files: int | None = column("files the run went through")
    mib: float | None = column("MiB the run moved (fio) or went through (programs)")
    ops_per_s: float | None = column("open/close loops: opens per second")
    op_p50_us: float | None = column("open/close loops: open latency, median, microseconds")
    op_p99_us: float | None = column("open/close loops: open latency, 99th percentile, microseconds")
    op_p999_us: float | None = column("open/close loops: open latency, 99.9th percentile, microseconds")
    backing_opens: int | None = column("passthrough files the built-in server registered during the run "
                                       "(FUSE_DEV_IOC_BACKING_OPEN; a reopen of a cached id registers none)")
    backing_open_us: float | None = column("mean time of one FUSE_DEV_IOC_BACKING_OPEN in the built-in server "
                                           "during the run, microseconds")
    backing_close_us: float | None = column("mean time of one FUSE_DEV_IOC_BACKING_CLOSE in the built-in server "
                                            "during the run, microseconds")


class DiskFigures(Record):
    """What the block device under the work directory did during the run (/proc/diskstats,
    before and after), next to what the workload moved."""

    dev_reads: int | None = column("read requests the device completed during the run")
    dev_read_bytes: int | None = column("bytes the device read during the run")
    dev_writes: int | None = column("write requests the device completed during the run")
    dev_write_bytes: int | None = column("bytes the device wrote during the run (the whole device: other writers "
                                         "and the file system's journal too)")


class TransportFigures(Record):
    """How the FUSE requests of the run reached the daemon (FUSE targets only)."""

    transport: Literal[TRANSPORTS] | None = column(
        "`dev` (read from /dev/fuse), `uring` (FUSE over io_uring) or `unknown`; empty for native targets. The "
        "built-in server says which; for an external server it is judged from its io_uring instances (README)")
    ring_requests: int | None = column(
        "requests that went through the io_uring ring during the measured run: the built-in server's own count; "
        "for an external server, the completions of every io_uring instance it holds (the evidence its transport "
        "is judged on); empty when not known")


class RunRecord(BaseModel):
    """One row of runs.csv: one measured run, its sections (in column order) filled by the parts
    that know them."""

    model_config = ConfigDict(frozen=True)

    info: RunInfo
    workload: WorkloadAsRun = WorkloadAsRun()
    fio: FioFigures = FioFigures()
    monitor: MonitorSummary = MonitorSummary()
    requests: RequestTotals = RequestTotals()
    target: TargetSettings = TargetSettings()
    kind: WorkloadKind = WorkloadKind()
    work: WorkFigures = WorkFigures()
    disk: DiskFigures = DiskFigures()
    transport: TransportFigures = TransportFigures()

    def row(self) -> dict[str, Any]:
        """The runs.csv row."""
        return {column: value for name in type(self).model_fields for column, value in getattr(self, name).row().items()}


RUN_SECTIONS: tuple[type[Record], ...] = tuple(field.annotation for field in RunRecord.model_fields.values())
RUN_COLUMNS: tuple[str, ...] = tuple(column for section in RUN_SECTIONS for column in section.columns())


def sweep_text(sweep: dict[str, Any]) -> str:
    """The `sweep` column of a cell's swept values."""
    return json.dumps(sweep, sort_keys=True)


# ---------------------------------------------------------------- the other files


class SampleRecord(Record):
    """One row of samples.csv: one role at one instant of a run, `sample_hz` times a second."""

    run_id: str = column("the run this sample belongs to", REQUIRED)
    t_s: float = column("seconds since the workload started", REQUIRED)
    role: Literal["fio", "program", "daemon", "system"] = column(
        "`fio` (fio and its job processes), `program` (an open/close loop or a catalog program and its children), "
        "`daemon` (the FUSE server) or `system`", REQUIRED)
    pids: int | None = column("processes of the role alive at this sample (empty for system)")
    cpu_user_s: float | None = column("user CPU seconds since the run started (system: summed over CPUs)")
    cpu_sys_s: float | None = column("system CPU seconds since the run started")
    cpu_iowait_s: float | None = column("system only: iowait seconds since the run started")
    cpu_pct: float | None = column("user + sys over the window since the previous sample; 100 = one full CPU")
    num_fds: int | None = column("open fds, summed over the role's processes")
    rss_kib: int | None = column("resident memory, KiB")
    ctx_voluntary: int | None = column("voluntary context switches since the run started")
    ctx_involuntary: int | None = column("involuntary context switches since the run started")
    file_nr: int | None = column("system only: allocated file handles")


class RequestRecord(Record):
    """One row of requests.csv: FUSE requests of one opcode during one run (non-zero counts only)."""

    run_id: str = column("the run", REQUIRED)
    source: str = column("`server` or `tracepoint`, as `fuse_requests_source` in runs.csv", REQUIRED)
    opcode: str = column("FUSE opcode name (`LOOKUP`, `READ`, ...; `OTHER`: opcodes the tracepoint "
                         "counter could not name)", REQUIRED)
    requests: int = column("requests of this opcode during the measured run", REQUIRED)


class CommandRecord(Record):
    """One row of commands.csv: the exact command line of one measured run."""

    run_id: str = column("the run", REQUIRED)
    argv: str = column("the command as a JSON list: fio with every option, the open/close loop, or the program",
                       REQUIRED)


class FdPressureRecord(Record):
    """One row of fd_pressure.csv: one fd-pressure step (a target, a fresh mount, N opens held by
    the clients, closed, then what stays released)."""

    target: str = column("target name", REQUIRED)
    target_type: str | None = column("target type")
    fd_policy: str | None = column("the target's fd policy (passthrough)")
    daemon_nofile: int | None = column("the daemon's RLIMIT_NOFILE as applied")
    open_files: int = column("N the clients tried to open", REQUIRED)
    opened: int | None = column("how many opens succeeded")
    failed: int | None = column("how many opens failed")
    errno: str | None = column("the first error")
    daemon_fds_before: int | None = column("daemon fds before the opens")
    daemon_fds_delta: int | None = column("growth of the daemon's fds while the files are held")
    client_fds_delta: int | None = column("growth of the clients' fds, all clients together")
    file_nr_delta: int | None = column("growth of allocated files system-wide (file-nr, what fs.file-max limits)")
    hidden_files: int | None = column("files allocated but in no process's fd table: file_nr - daemon - client deltas")
    backing_file_objects: int | None = column("growth of the kernel's `bfilp` slab (struct backing_file): in no "
                                              "fd table and not in file-nr")
    backing_ids: int | None = column("growth of the built-in server's registered backing ids")
    open_p50_us: float | None = column("open latency through the mount, median, microseconds")
    open_p99_us: float | None = column("open latency through the mount, 99th percentile, microseconds")
    opens_per_s: float | None = column("open attempts per second over the whole open phase")
    daemon_rss_delta_kib: int | None = column("daemon memory growth, KiB")
    kernel_bytes_per_file: float | None = column("backing-file slab (`bfilp`) bytes per opened file")
    close_s: float | None = column("time to close all files (the slowest client)")
    returned_to_baseline: bool | None = column("whether every count came back after the release")
    baseline_detail: str | None = column("what did not come back, and notes")
    status: Status = column("`ok`, `failed` or `unavailable` (as in runs.csv)", REQUIRED)
    error: str | None = column("why, when status is not `ok`")
    file_nr_noise: int | None = column("spread of file-nr while nothing of ours changed: other activity on the host")
    release: str | None = column("how what stays after the close was released: `drop_caches`, "
                                 "`memory_pressure` or `unmount`")
    clients: int | None = column("client processes the N opens were spread over")
    visible_fds: int | None = column("files in some process's fd table, what lsof lists: daemon plus clients deltas")
    kernel_listed: int | None = column("backing files the kernel itself lists for the connection (a fusectl "
                                       "`backing_files` file); empty where the kernel has no such view")
    file_objects: int | None = column("growth of the `filp` slab (struct file)")
    dentry_objects: int | None = column("growth of the `dentry` slab (FUSE and backing dentries)")
    fuse_inode_objects: int | None = column("growth of the `fuse_inode` slab")
    backing_inode_objects: int | None = column("growth of the backing file system's inode slab")
    backing_inode_slab: str | None = column("that slab's name (e.g. `ext4_inode_cache`)")
    slab_bytes: int | None = column("growth of the slabs above together (objects x object size), bytes")
    meminfo_slab_kib: int | None = column("growth of `Slab` in /proc/meminfo (all slab memory), KiB")
    meminfo_sunreclaim_kib: int | None = column("growth of `SUnreclaim` in /proc/meminfo, KiB")
    slab_bytes_per_file: float | None = column("slab_bytes per opened file: the kernel memory of an open file")
    file_nr_held: int | None = column("allocated files system-wide while the files are held")
    file_max: int | None = column("fs.file-max: the system-wide limit on allocated files (file-nr)")
    nr_open: int | None = column("fs.nr_open: the ceiling of any process's RLIMIT_NOFILE")
    idle_ids: int | None = column("backing ids still registered after every client closed its files and exited")
    idle_hidden_files: int | None = column("files still allocated then, in no fd table: file-nr growth over the "
                                           "baseline minus the daemon's fd growth")
    idle_backing_file_objects: int | None = column("`bfilp` objects still allocated then")
    idle_slab_bytes: int | None = column("slab bytes (as slab_bytes) still allocated then")
    closed_ids: int | None = column("backing ids the server closed between the opens and the release: at each "
                                    "last close (`close`, `keep`) or by its cache_size LRU (`cache`)")
    release_s: float | None = column("time from the release until the idle backing ids were gone (for `unmount`: "
                                     "until the unmount returned); empty when nothing stayed idle, or when they "
                                     "were not released (baseline_detail says so)")


SNAPSHOT_PHASES = ("premount", "baseline", "before", "held", "idle", "released", "after")


class SnapshotRecord(Record):
    """One row of fd_pressure_snapshots.csv: one reading of every count during an fd-pressure step."""

    target: str = column("target name", REQUIRED)
    fd_policy: str | None = column("the target's fd policy (passthrough)")
    open_files: int = column("N of the step", REQUIRED)
    phase: Literal[SNAPSHOT_PHASES] = column(
        "`premount` (caches dropped, not mounted), `baseline` (fresh mount), `before` (clients started), "
        "`held` (N files open), `idle` (closed, clients gone, nothing dropped), `released` (after the "
        "release), `after` (settled)", REQUIRED)
    file_nr: int = column("allocated files system-wide", REQUIRED)
    daemon_fds: int | None = column("the daemon's fds")
    daemon_rss_kib: int | None = column("the daemon's resident memory, KiB")
    client_fds: int | None = column("the clients' fds, all clients together")
    bfilp_active: int | None = column("active objects of the `bfilp` slab")
    bfilp_objsize: int | None = column("object size of the `bfilp` slab, bytes")
    backing_ids: int | None = column("live backing ids of the built-in server")
    release: str | None = column("the step's release (as in fd_pressure.csv)")
    backing_closes: int | None = column("backing ids the built-in server has closed since it started")
    kernel_listed: int | None = column("backing files the kernel lists for the connection (where it can)")
    filp_active: int | None = column("active objects of the `filp` slab")
    dentry_active: int | None = column("active objects of the `dentry` slab")
    fuse_inode_active: int | None = column("active objects of the `fuse_inode` slab")
    backing_inode_active: int | None = column("active objects of the backing file system's inode slab")
    slab_bytes: int | None = column("those five slabs' objects x object size, bytes")
    meminfo_slab_kib: int | None = column("`Slab` of /proc/meminfo, KiB")
    meminfo_sunreclaim_kib: int | None = column("`SUnreclaim` of /proc/meminfo, KiB")


# ---------------------------------------------------------------- manifest.json


class PlanEntry(BaseModel):
    """One planned run, in execution order."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    cell: str
    target: str
    repetition: int


class AutoRule(BaseModel):
    """`repeat: auto`: after `min_repeat` repetitions, another whole repetition is added until
    every comparison with the baseline is decided or the budget is spent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    baseline: str = Field(description="the target every comparison is made with")
    threshold: float = Field(description="a comparison is decided beyond it (faster, slower) or within it (equivalent)")
    min_repeat: int = Field(description="repetitions before the first decision")
    max_repeat: int = Field(description="the budget in repetitions")
    max_time_s: float | None = Field(description="the budget in seconds (none: no limit)")

    @property
    def looks(self) -> int:
        """How many times the comparisons may be checked (after each repetition from `min_repeat`)."""
        return self.max_repeat - self.min_repeat + 1


class AutoState(AutoRule):
    """How a `repeat: auto` run went: its rule, and so far the time spent and why it stopped."""

    model_config = ConfigDict(frozen=False, extra="ignore", validate_assignment=True)

    elapsed_s: float = Field(0.0, description="seconds spent running so far, over every session")
    stopped: Literal["decided", "max_repeat", "max_time"] | None = Field(
        None, description="why no repetition was added: every comparison decided, or the budget spent")
    undecided: list[str] = Field(default_factory=list, description="`cell / target` comparisons still undecided "
                                 "after the last repetition")


class UringParameter(BaseModel):
    """/sys/module/fuse/parameters/enable_uring around a run that needs FUSE over io_uring."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    before: str = Field(description="its value when the run began (`Y` or `N`), written back after it")
    during: str | None = Field(description="its value while the runs ran (`Y`)")


class Manifest(BaseModel):
    """manifest.json: what was run, where, in which order, and how far it got."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    format_version: int = Field(FORMAT_VERSION, description="version of this layout (1 to 7; 2 added "
                                "requests.csv and fd_pressure_snapshots.csv, 3 the workload families' columns "
                                "and opens/, 4 the environment, targets, commands.csv and the device columns, 5 "
                                "fio's logs in fio_logs/, 6 the transport columns and `enable_uring`, 7 fd pressure at "
                                "scale: clients, release, idle and kernel-memory columns)")
    scenario: str = Field(description="scenario name")
    scenario_hash: str = Field(description="a hash of the scenario text (`--resume` checks it)")
    seed: int = Field(description="seed of the target order")
    repeat: int = Field(description="repetitions planned (with `repeat: auto`, those started so far)")
    auto: AutoState | None = Field(None, description="`repeat: auto` only: the rule, the budget and why it stopped")
    plan: list[PlanEntry] = Field(description="every run in execution order: `run_id`, `cell`, `target`, `repetition`")
    target_order: list[list[str]] = Field(description="the target order of each repetition")
    host: dict[str, Any] = Field(description="hostname, kernel and build, arch, CPU model, cores, memory, Python")
    environment: dict[str, Any] = Field(default_factory=dict, description="the whole environment (bench.environment): "
                                        "kernel command line, FUSE config and module parameters, CPU governors, SMT, "
                                        "mitigations, virtualization, THP and memory, the work directory's file "
                                        "system and block device, fusebench's version and git commit")
    targets: dict[str, Any] = Field(default_factory=dict, description="target -> what it is (`description`), and "
                                    "what its FUSE connection negotiated at INIT (built-in targets: `init`) or its "
                                    "command and `--version` output (external targets)")
    enable_uring: UringParameter | None = Field(None, description="scenarios with a FUSE over io_uring target "
                                                "only: the fuse module's `enable_uring` `before` the run and "
                                                "`during` it (the runner turns it on and back)")
    fio_version: str | None = Field(description="fio's version")
    tool_version: str = Field(description="fusebench's version")
    workdir: str = Field(description="where data files and mounts were")
    started_at: str = Field(description="UTC, ISO 8601")
    ended_at: str | None = Field(None, description="UTC, ISO 8601; empty while running")
    status: FolderStatus = Field(FOLDER_RUNNING, description="`running` (or killed), `interrupted` (Ctrl-C), "
                                 "`complete` (every run attempted)")
    runs: dict[str, str] = Field(default_factory=dict, description="run id -> `ok`, `failed` or `unavailable`")
    skipped_targets: dict[str, str] = Field(default_factory=dict, description="target -> why it could not run here")
    fd_pressure: str | None = Field(None, description="`pending`, `ok`, `failed` or `unavailable` (none without "
                                    "fd_pressure)")
    notes: list[str] = Field(default_factory=list, description="resumptions and anything else worth knowing "
                             "about how the folder was made")

    def cells(self) -> dict[str, dict[str, str]]:
        """Per cell and target: ok, failed, unavailable, partial or pending."""
        statuses: dict[str, dict[str, list[str]]] = {}
        for entry in self.plan:
            status = self.runs.get(entry.run_id, "pending")
            statuses.setdefault(entry.cell, {}).setdefault(entry.target, []).append(status)
        return {
            cell: {target: seen[0] if len(set(seen)) == 1 else _mixed(seen) for target, seen in targets.items()}
            for cell, targets in statuses.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with the derived per-cell status."""
        return dict(self.model_dump(), cells=self.cells())


MANIFEST_DERIVED = {"cells": "cell -> target -> `ok`, `failed`, `unavailable`, `partial` or `pending`"}


def _mixed(statuses: list[str]) -> str:
    return STATUS_FAILED if STATUS_FAILED in statuses else "partial"
