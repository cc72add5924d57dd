"""Sample CPU, fds and memory of the workload (fio or a program), the FUSE daemon and the whole system.

A background thread reads /proc through psutil at a fixed rate. It never calls
open_files(): that stat()s every open path, which on a FUSE mount asks the daemon under
test (and hangs with it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil

from bench import system
from bench.errors import BenchError
from bench.records import MonitorSummary, SampleRecord

CHILD_REFRESH_S = 1.0  # children() scans the whole process table: not on every tick


class MonitorError(BenchError):
    """The sampler thread failed."""


@dataclass
class MonitorResult:
    """The samples of one run (samples.csv rows) and their aggregates (runs.csv columns)."""

    samples: list[SampleRecord]
    summary: MonitorSummary


@dataclass
class _Tracked:
    proc: psutil.Process
    base: tuple[float, float, int, int]  # user, sys, voluntary, involuntary at first sight
    last: tuple[float, float, int, int] = (0.0, 0.0, 0, 0)  # since `base`, kept after exit
    alive: bool = True


@dataclass
class _ProcessRole:
    """A set of processes sampled as one role; exited ones keep their last known counters."""

    name: str
    from_zero: bool  # True: every process belongs to the run, count its CPU since it was born
    tracked: dict[tuple[int, float], _Tracked] = field(default_factory=dict)
    prev_cpu: float | None = None

    def add(self, proc: psutil.Process) -> None:
        try:
            key = (proc.pid, proc.create_time())
            if key in self.tracked:
                return
            base = (0.0, 0.0, 0, 0) if self.from_zero else self._counters(proc)
        except psutil.Error:
            return
        self.tracked[key] = _Tracked(proc, base)

    @staticmethod
    def _counters(proc: psutil.Process) -> tuple[float, float, int, int]:
        cpu = proc.cpu_times()
        ctx = proc.num_ctx_switches()
        return cpu.user, cpu.system, ctx.voluntary, ctx.involuntary

    def sample(self, window_s: float) -> dict:
        pids = fds = rss = 0
        for item in self.tracked.values():
            if not item.alive:
                continue
            try:
                with item.proc.oneshot():
                    now = self._counters(item.proc)
                    fds_now = item.proc.num_fds()
                    rss_now = item.proc.memory_info().rss
            except psutil.Error:
                item.alive = False
                continue
            item.last = tuple(n - b for n, b in zip(now, item.base))  # type: ignore[assignment]
            pids += 1
            fds += fds_now
            rss += rss_now
        user, sys_, vol, invol = (sum(t.last[i] for t in self.tracked.values()) for i in range(4))
        row = {
            "role": self.name, "pids": pids, "cpu_user_s": round(user, 3), "cpu_sys_s": round(sys_, 3),
            "cpu_pct": _pct(self.prev_cpu, user + sys_, window_s),
            "num_fds": fds, "rss_kib": rss // 1024, "ctx_voluntary": vol, "ctx_involuntary": invol,
        }
        self.prev_cpu = user + sys_
        return row


def _row(**values: object) -> SampleRecord:
    """A samples.csv row (built from trusted values: not validated on the sampler's path)."""
    return SampleRecord.model_construct(**{name: values.get(name) for name in SampleRecord.model_fields})


def _pct(previous: float | None, current: float, window_s: float) -> float | None:
    if previous is None or window_s <= 0:
        return None
    return round(100.0 * (current - previous) / window_s, 1)


class Monitor:
    """Background sampler of the workload (fio or a program, and their children), the daemon and the system."""

    def __init__(self, hz: float = 10.0, daemon_pid: int | None = None, *, run_id: str = "",
                 role: str = "fio") -> None:
        if hz <= 0:
            raise ValueError("hz must be positive")
        self.period = 1.0 / hz
        self.daemon_pid = daemon_pid
        self.run_id = run_id
        self.role = role  # of the workload's processes: fio, or a program
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: list[SampleRecord] = []
        self._ticks = 0
        self._sampler_cpu = 0.0
        self._error: BaseException | None = None

    def start(self, workload_pid: int) -> None:
        """Start sampling `fio_pid` (and its children), the daemon and the system."""
        if self._thread is not None:
            raise RuntimeError("a Monitor samples one run; create a new one")
        self._workload_pid = workload_pid
        self._thread = threading.Thread(target=self._run, name="fusebench-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> MonitorResult:
        """Take a last sample, stop the thread and return the samples and summary."""
        if self._thread is None:
            raise RuntimeError("Monitor.stop() before start()")
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise MonitorError(f"the monitor failed: {self._error!r}")
        return MonitorResult(self._rows, self._summary())

    # ------------------------------------------------------------ sampling thread

    def _run(self) -> None:
        cpu_start = time.thread_time()
        try:
            self._sample_until_stopped()
        except Exception as exc:  # reported by stop(); a dead sampler must not kill the run
            self._error = exc
        finally:
            self._sampler_cpu = time.thread_time() - cpu_start

    def _sample_until_stopped(self) -> None:
        start = time.monotonic()
        workload = _ProcessRole(self.role, from_zero=True)  # started for this run
        daemon = _ProcessRole("daemon", from_zero=False)
        workload_root = _process(self._workload_pid)
        if workload_root is not None:
            workload.add(workload_root)
        if self.daemon_pid is not None and (proc := _process(self.daemon_pid)) is not None:
            daemon.add(proc)
        roles = [workload] + ([daemon] if self.daemon_pid is not None else [])
        system_base = psutil.cpu_times()
        system_prev: float | None = None
        last_refresh = -CHILD_REFRESH_S
        previous_t = None
        next_tick = start
        while True:
            now = time.monotonic()
            if workload_root is not None and now - last_refresh >= CHILD_REFRESH_S:
                last_refresh = now
                try:
                    for child in workload_root.children(recursive=True):
                        workload.add(child)
                except psutil.Error:
                    pass  # the workload has exited; its known processes keep their last values
            t_s = now - start
            window = t_s - previous_t if previous_t is not None else 0.0
            previous_t = t_s
            for role in roles:
                self._rows.append(_row(run_id=self.run_id, t_s=round(t_s, 4), **role.sample(window)))
            # The "cpu" line of /proc/stat is already the sum over all CPUs.
            cpu = psutil.cpu_times()
            user, sys_, iowait = (cpu.user - system_base.user, cpu.system - system_base.system,
                                  cpu.iowait - system_base.iowait)
            self._rows.append(_row(
                run_id=self.run_id, t_s=round(t_s, 4), role="system",
                cpu_user_s=round(user, 3), cpu_sys_s=round(sys_, 3), cpu_iowait_s=round(iowait, 3),
                cpu_pct=_pct(system_prev, user + sys_, window), file_nr=system.file_nr(),
            ))
            system_prev = user + sys_
            self._ticks += 1
            if self._stop.is_set():
                return
            next_tick += self.period
            now = time.monotonic()
            if next_tick < now:  # fell behind: skip the missed ticks instead of bursting
                next_tick = now
            self._stop.wait(next_tick - now)

    # ------------------------------------------------------------ summary

    def _summary(self) -> MonitorSummary:
        def rows(role: str) -> list[SampleRecord]:
            return [row for row in self._rows if row.role == role]

        def last(role: str, column: str) -> float | None:
            found = rows(role)
            return getattr(found[-1], column) if found else None

        def peak(role: str, column: str) -> int | None:
            values = [getattr(row, column) for row in rows(role) if getattr(row, column) is not None]
            return max(values) if values else None

        return MonitorSummary(
            fio_cpu_user_s=last(self.role, "cpu_user_s"),
            fio_cpu_sys_s=last(self.role, "cpu_sys_s"),
            daemon_cpu_user_s=last("daemon", "cpu_user_s"),
            daemon_cpu_sys_s=last("daemon", "cpu_sys_s"),
            daemon_fds_max=peak("daemon", "num_fds"),
            daemon_rss_max_kib=peak("daemon", "rss_kib"),
            system_cpu_user_s=last("system", "cpu_user_s"),
            system_cpu_sys_s=last("system", "cpu_sys_s"),
            system_cpu_iowait_s=last("system", "cpu_iowait_s"),
            file_nr_max=peak("system", "file_nr"),
            sampler_cpu_s=round(self._sampler_cpu, 4),
            samples=self._ticks,
        )


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None
