"""How one run is measured: the cache state, the FUSE request counters around fio, fio under
the monitor, and a watchdog that aborts a FUSE daemon that stopped answering."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from bench import fio
from bench.fio_output import FioError, FioResult
from bench.host import Host
from bench.monitor import Monitor, MonitorResult
from bench.plan import PlannedRun
from bench.request_counter import RequestCounter
from bench.scenario import WorkloadCell
from bench.stop import StopToken
from bench.targets import MountedTarget

# fio gets runtime + ramp + this margin (plus its runtime again) before it is stopped.
FIO_TIMEOUT_MARGIN_S = 60.0
# Past fio's timeout, the FUSE connection is aborted after this long (fio's own stop goes first).
HUNG_DAEMON_ABORT_S = 1.0


@dataclass(frozen=True)
class Measured:
    """What one measured fio run produced."""

    fio: FioResult
    monitor: MonitorResult
    requests: RequestCounter
    duration_s: float  # wall time of the measured fio run


def fio_timeout(cell: WorkloadCell) -> float:
    """How long fio may take before it is stopped."""
    return 2 * (cell.runtime + cell.ramp_time) + FIO_TIMEOUT_MARGIN_S


def measure(host: Host, run: PlannedRun, mounted: MountedTarget, files: list[Path], output: Path,
            scratch: Path, sample_hz: float, tracing: bool, stop: StopToken) -> Measured:
    """Cache state, counters before, fio under the monitor, counters after."""
    paths = [Path(mounted.path) / rel for rel in files]
    if run.cell.cache == "cold":
        host.drop_caches()
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        run_fio(host, run.cell, paths, scratch / "warmup.json", mounted, stop)
    sampler = host.monitor(sample_hz, mounted.daemon_pid, run.run_id)
    with RequestCounter(mounted, host.tracer if tracing else None) as counter:
        started = host.monotonic()
        result, sampled = run_fio(host, run.cell, paths, output, mounted, stop, sampler)
        duration_s = host.monotonic() - started
    assert sampled is not None
    return Measured(result, sampled, counter, duration_s)


def run_fio(host: Host, cell: WorkloadCell, paths: list[Path], output: Path, mounted: MountedTarget,
            stop: StopToken, sampler: Monitor | None = None) -> tuple[FioResult, MonitorResult | None]:
    """Run fio to completion under a timeout (stopped and reaped on every exit path).

    fio blocked on a FUSE daemon that stopped answering cannot be killed, so past the
    timeout the mount's connection is aborted: the blocked I/O fails and fio exits.
    """
    timeout = fio_timeout(cell)
    aborted = threading.Event()

    def abort_hung_connection(connection: int) -> None:
        aborted.set()
        host.abort_connection(connection)

    watchdog = threading.Timer(timeout + HUNG_DAEMON_ABORT_S, abort_hung_connection, args=(mounted.connection,))
    watchdog.daemon = True
    sampled = None
    pages = fio.hugepages_needed(cell) if cell.buffers == "hugepages" else 0
    with host.hugepages(pages):
        process = host.start_fio(fio.build_argv(cell, paths, output))
        try:
            if sampler is not None:
                sampler.start(process.pid)
            if mounted.connection is not None:
                watchdog.start()
            result = process.wait(timeout, stop)
        except FioError as exc:
            if aborted.is_set():
                raise FioError(f"{exc}; the FUSE daemon stopped answering, so its connection was aborted") from None
            raise
        finally:
            watchdog.cancel()
            process.stop()
            if sampler is not None:
                sampled = sampler.stop()
    return result, sampled
