"""How one run is measured, for every family: the cache state (caches dropped, or one
unmeasured pass), the FUSE request counters around the run, the workload under the monitor,
bench.watchdog on the FUSE connection (a server that stopped answering fails the run within
about 10 s), and past the workload's timeout an abort of the connection as the last resort.

A family is run by one function: fio (block I/O, small files, mmap, metadata engines), an
open/close loop (bench.opens, a process of ours), or a catalog program (bench.programs).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench import fio, opens
from bench.environment import DiskCounters
from bench.errors import BenchError
from bench.fio_output import FioError, FioResult
from bench.host import Host
from bench.monitor import Monitor, MonitorResult
from bench.opens import OpensResult
from bench.plan import PlannedRun
from bench.processes import stderr_tail
from bench.programs import Program
from bench.request_counter import RequestCounter
from bench.scenario import Cell, Opens, WorkloadCell
from bench.stop import StopToken
from bench.targets import MountedTarget
from bench.vocabulary import FIO, METADATA_ENGINES, OPENS, PROGRAM
from bench.watchdog import Watchdog

# A workload gets twice its runtime plus this margin before it is stopped.
TIMEOUT_MARGIN_S = 60.0
# Past that timeout, the FUSE connection is aborted after this long (the workload's own stop goes first).
HUNG_DAEMON_ABORT_S = 1.0
MIB = float(1 << 20)


class RunError(BenchError):
    """The workload itself failed: a program exited with an error, a loop could not run."""


@dataclass(frozen=True)
class Done:
    """What a family's run did: operations, files and MiB, its wall time (from just before the
    workload started to its exit), the monitor's samples when sampled, and fio's or the
    loop's own result."""

    ops: int
    files: int
    mib: float
    wall_s: float
    sampled: MonitorResult | None
    argv: list[str]
    fio: FioResult | None = None
    loop: OpensResult | None = None


@dataclass(frozen=True)
class Measured:
    """One measured run: the monitor's result (the workload's CPU from the kernel), the
    request counters, and what the run did."""

    monitor: MonitorResult
    requests: RequestCounter
    done: Done
    disk: DiskCounters | None  # what the block device under the work directory did meanwhile


# (host, cell, mounted, paths, output, logs, scratch, stop, sampler): `output` is where the
# family's raw result goes, `logs` the prefix of fio's logs (None: no logs).
Execute = Callable[[Host, Cell, MountedTarget, list[Path], Path | None, Path | None, Path, StopToken, Monitor | None],
                   Done]


def timeout_of(cell: Cell) -> float:
    """How long one pass of a run may take before it is stopped: a program's own `timeout`,
    else twice its runtime (ramp included) plus a margin."""
    if isinstance(cell, Program):
        return cell.timeout
    return 2 * (cell.runtime + getattr(cell, "ramp_time", 0.0)) + TIMEOUT_MARGIN_S


def measure(host: Host, run: PlannedRun, mounted: MountedTarget, paths: list[Path], output: Path | None,
            scratch: Path, sample_hz: float, tracing: bool, stop: StopToken, device: str | None = None,
            logs: Path | None = None) -> Measured:
    """Under the watchdog: cache state, counters before (FUSE requests, the block device
    `device`, reaped CPU), the workload under the monitor (fio's logs of it to the prefix
    `logs`), counters after."""
    execute = EXECUTORS[run.cell.family]
    with RequestCounter(mounted, host.tracer if tracing else None, host.ring_tails) as counter, \
            Watchdog(host, mounted.connection, counter.counted if counter.source else None,
                     mounted.daemon_pid) as dog:
        try:
            # Under the watchdog: the drop's `sync` blocks on a stopped server with dirty pages.
            if run.cell.cache == "cold":
                host.drop_caches()
            else:
                scratch.mkdir(parents=True, exist_ok=True)
                execute(host, run.cell, mounted, paths, scratch / f"warmup.{run.cell.family}.json", None, scratch,
                        stop, None)
            counter.begin()
            sampler = host.monitor(sample_hz, mounted.daemon_pid, run.run_id, ROLES[run.cell.family])
            cpu_before, disk_before = host.children_cpu(), host.disk_counters(device)
            done = execute(host, run.cell, mounted, paths, output, logs, scratch, stop, sampler)
            cpu_after, disk_after = host.children_cpu(), host.disk_counters(device)
        except (BenchError, OSError):
            dog.check()  # a stopped server is why, whatever the workload made of it
            raise
        dog.check()
    assert done.sampled is not None
    # The workload was reaped by now: the kernel's account of its CPU is exact, where sampling
    # misses a program that ends between two samples.
    user_s, sys_s = (round(after - before, 3) for before, after in zip(cpu_before, cpu_after))
    summary = done.sampled.summary.model_copy(update={"fio_cpu_user_s": user_s, "fio_cpu_sys_s": sys_s})
    disk = disk_after - disk_before if disk_before and disk_after else None
    return Measured(MonitorResult(done.sampled.samples, summary), counter, done, disk)


def _watched(host: Host, mounted: MountedTarget, timeout: float, start: Callable[[], object],
             finish: Callable[[object], object], sampler: Monitor | None,
             stop: StopToken, what: str) -> tuple[object, float, MonitorResult | None]:
    """Start a process, sample it, and wait for it under a timeout and a watchdog: a workload
    blocked on a FUSE daemon that stopped answering cannot be killed, so past the timeout the
    mount's connection is aborted and the blocked I/O fails. Stopped on every exit path.
    Returns what `finish` made of the process, its wall time, and the samples."""
    aborted = threading.Event()

    def abort_hung_connection(connection: int) -> None:
        aborted.set()
        host.abort_connection(connection)

    watchdog = threading.Timer(timeout + HUNG_DAEMON_ABORT_S, abort_hung_connection, args=(mounted.connection,))
    watchdog.daemon = True
    sampled = None
    started = host.monotonic()
    process = start()
    try:
        if sampler is not None:
            sampler.start(process.pid)
        if mounted.connection is not None:
            watchdog.start()
        result = finish(process)
        wall_s = host.monotonic() - started
    except (BenchError, subprocess.TimeoutExpired) as exc:
        reason = f"{what} did not finish within {timeout:g} s; stopped it" \
            if isinstance(exc, subprocess.TimeoutExpired) else str(exc)
        if aborted.is_set():
            reason += "; the FUSE daemon stopped answering, so its connection was aborted"
        raise (exc if isinstance(exc, FioError) and not aborted.is_set() else RunError(reason)) from None
    finally:
        watchdog.cancel()
        process.stop()
        if sampler is not None:
            sampled = sampler.stop()
    return result, wall_s, sampled


def _fio(host: Host, cell: WorkloadCell, mounted: MountedTarget, paths: list[Path], output: Path | None,
         logs: Path | None, scratch: Path, stop: StopToken, sampler: Monitor | None) -> Done:
    """fio on the cell's files through the mount."""
    files = [Path(mounted.path) / rel for rel in paths]
    pages = fio.hugepages_needed(cell) if cell.buffers == "hugepages" else 0
    argv = fio.build_argv(cell, files, output, logs)
    with host.hugepages(pages) if pages else nullcontext():
        result, wall_s, sampled = _watched(host, mounted, timeout_of(cell), lambda: host.start_fio(argv),
                                           lambda process: process.wait(timeout_of(cell), stop), sampler, stop, "fio")
    ios = result.read.total_ios + result.write.total_ios
    # A metadata engine's io_bytes are fio's accounting of file sizes: it moves no data.
    moved = 0.0 if cell.ioengine in METADATA_ENGINES else (result.read.io_bytes + result.write.io_bytes) / MIB
    return Done(ios, cell.nrfiles, moved, wall_s, sampled, argv, fio=result)


def _opens(host: Host, cell: Opens, mounted: MountedTarget, paths: list[Path], output: Path | None,
           logs: Path | None, scratch: Path, stop: StopToken, sampler: Monitor | None) -> Done:
    """The open/close loop on the cell's files through the mount."""
    (directory,) = paths
    argv = opens.client_argv(Path(mounted.path) / directory, cell.files, cell.runtime, output)

    def finish(process) -> OpensResult:
        status, _, stderr = process.wait(timeout_of(cell), stop)
        if status != 0:
            raise RunError(f"the open/close loop exited with status {status}{stderr_tail(stderr, 'it')}")
        try:
            return opens.read_result(output)
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"the open/close loop left no readable result in {output}: {exc}") from None

    loop, wall_s, sampled = _watched(host, mounted, timeout_of(cell),
                                     lambda: host.start_command(argv, env=opens.client_env()), finish, sampler, stop,
                                     "the open/close loop")
    return Done(loop.opens, cell.files, 0.0, wall_s, sampled, argv, loop=loop)


def _program(host: Host, cell: Program, mounted: MountedTarget, paths: list[Path], output: Path | None,
             logs: Path | None, scratch: Path, stop: StopToken, sampler: Monitor | None) -> Done:
    """The catalog program on the target's view of the source directory."""
    command = cell.command(Path(mounted.path), scratch)

    def finish(process) -> None:
        status, _, stderr = process.wait(cell.timeout, stop)
        if status != 0:
            raise RunError(f"{cell.program} exited with status {status}{stderr_tail(stderr, cell.program)}")

    _, wall_s, sampled = _watched(host, mounted, cell.timeout, lambda: host.start_command(command.argv, command.env),
                                  finish, sampler, stop, cell.program)
    files, size = cell.touched()
    return Done(1, files, size / MIB, wall_s, sampled, command.argv)


EXECUTORS: dict[str, Execute] = {FIO: _fio, OPENS: _opens, PROGRAM: _program}
# The samples' role of each family's processes.
ROLES = {FIO: "fio", OPENS: "program", PROGRAM: "program"}
