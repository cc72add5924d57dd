"""A Host for unit tests: no root, no mounts, no fio. Mounts are recorded, fio writes a real
fio 3.33 json+ fixture, and a test decides per run what fio does (fail, hang, or have Ctrl-C
pressed meanwhile)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.fio_output import FioError, FioResult, parse_fio_output
from bench.fusefs.kernel import uring_missing
from bench.host import Host
from bench.monitor import MonitorResult
from bench.records import FdPressureRecord, MonitorSummary, SampleRecord, SnapshotRecord
from bench.stop import StopToken
from bench.system import UringUnavailable
from bench.targets import MountedTarget, TargetError
from bench.workspace import stats_path

FIO_OUTPUT = Path(__file__).parent / "fixtures" / "fio" / "seq-read.json"


class FakeProgress:
    """RunProgress's interface, keeping every line."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def message(self, text: str) -> None:
        self.lines.append(text)

    def start_run(self, label: str) -> None:
        pass

    def extend(self, runs: int, estimate_s: float) -> None:
        self.lines.append(f"(+{runs} runs)")

    def finish_run(self, line: str, estimate_s: float) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass


class FakeMonitor:
    """A monitor that sampled one instant."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def start(self, fio_pid: int) -> None:
        pass

    def stop(self) -> MonitorResult:
        sample = SampleRecord(run_id=self.run_id, t_s=0.0, role="system", file_nr=100)
        return MonitorResult([sample], MonitorSummary(samples=1, sampler_cpu_s=0.001))


class FakeFio:
    """fio that 'ran' at once: it copies a real json+ output to --output (unless told otherwise)."""

    def __init__(self, host: FakeHost, argv: list[str]) -> None:
        self.host = host
        self.argv = argv
        self.output = Path(next(arg.partition("=")[2] for arg in argv if arg.startswith("--output=")))
        self.pid = 4242

    def wait(self, timeout: float, stop: StopToken | None = None) -> FioResult:
        self.host.fio_runs += 1
        behaviour = self.host.fio_behaviour.get(self.host.fio_runs)
        if behaviour is not None:
            behaviour(self.host, stop)
        self.host.serve_requests()
        self.host.reap()
        data = json.loads(FIO_OUTPUT.read_text())
        factor = self.host.speed_of(self.output.stem)  # the output is named after the run
        for job in data["jobs"]:
            for direction in ("read", "write"):
                for figure in ("bw_bytes", "bw", "iops"):
                    job[direction][figure] *= factor
        self.output.write_text(json.dumps(data))
        return parse_fio_output(self.output.read_text())

    def stop(self) -> None:
        pass


class FakeCommand:
    """A program or open/close loop that 'ran' at once; the loop writes a small result to its OUTPUT."""

    def __init__(self, host: FakeHost, argv: list[str]) -> None:
        self.host = host
        self.argv = argv
        self.pid = 4343

    def wait(self, timeout: float, stop: StopToken | None = None) -> tuple[int, str, str]:
        self.host.commands.append(self.argv)
        self.host.serve_requests()
        self.host.reap()
        if self.argv[1:3] == ["-m", "bench.opens"]:
            Path(self.argv[-1]).write_text(json.dumps({"opens": 2000, "wall_s": 1.0, "open_ns": {"5000": 1990, "90000": 10},
                                                       "close_ns": {"1000": 2000}}))
        return self.host.command_status, "", "" if self.host.command_status == 0 else "it went wrong\n"

    def stop(self) -> None:
        pass


class FakeHost(Host):
    """A host whose every effect is recorded in `events` and `said`."""

    def __init__(self, unavailable: dict[str, str] | None = None, failing_mounts: set[str] = frozenset()) -> None:
        self.said: list[str] = []
        self.events: list[str] = []
        self.unavailable = unavailable or {}
        self.failing_mounts = set(failing_mounts)
        self.stats: dict[str, Any] | None = None  # what a mount's stats file says first (None: no stats file)
        self.requests_per_run: dict[str, int] = {}  # what each fio run adds to every stats file
        self.backing_per_run: dict[str, int] = {}  # what each run adds to the stats files' backing totals
        self.reaped_cpu = [0.0, 0.0]  # user and system seconds of the workloads that ended
        self._stats_files: list[Path] = []
        self.fio_runs = 0
        self.fio_behaviour: dict[int, Callable[[FakeHost, StopToken], None]] = {}  # n-th fio run -> effect
        self.commands: list[list[str]] = []  # argv of every program and loop run
        self.speed_of: Callable[[str], float] = lambda run_id: 1.0  # how fast fio 'ran' in a run, by run id
        self.command_status = 0  # what every program and loop exits with
        self.enable_uring: str | None = "N"  # the fuse module's parameter (None: a kernel without it)
        self.uring_refused: str | None = None  # why turning it on fails (None: it does not)
        self.stop: StopToken | None = None
        self._on_first: Callable[[str], None] | None = None
        self._clock = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
        self._ticks = 0.0

    # -- terminal, clocks, signals

    def say(self, text: str) -> None:
        self.said.append(text)

    def output(self, text: str) -> None:
        self.said.append(text)

    def progress(self, total: int, estimate_s: float) -> FakeProgress:
        return FakeProgress(self.said)

    def now(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    def monotonic(self) -> float:
        self._ticks += 1.5
        return self._ticks

    def children_cpu(self) -> tuple[float, float]:
        return self.reaped_cpu[0], self.reaped_cpu[1]

    def reap(self) -> None:
        """A workload ended: the kernel adds its CPU to the children's."""
        self.reaped_cpu[0] += 0.25
        self.reaped_cpu[1] += 0.5

    @contextlib.contextmanager
    def stop_signals(self, stop: StopToken, on_first: Callable[[str], None]) -> Iterator[None]:
        self.stop, self._on_first = stop, on_first
        yield
        self.stop = self._on_first = None

    def press_ctrl_c(self) -> None:
        """What SIGINT does while a run is under way."""
        if self.stop is not None and self.stop.signal() == 1:
            self._on_first("SIGINT")

    # -- facts and knobs

    def is_root(self) -> bool:
        return True

    def fio_version(self) -> str | None:
        return "fio-3.33"

    def host_info(self) -> dict[str, Any]:
        return {"hostname": "fake", "kernel": "6.18.0-test", "arch": "x86_64", "cpu_cores": 2}

    def environment(self, workdir: Path) -> dict[str, Any]:
        return {"kernel": {"release": "6.18.0-test", "cmdline": "quiet"}, "workdir": {"path": str(workdir)}}

    def disk_device(self, path: Path) -> str | None:
        return None

    def program_version(self, program: str) -> str | None:
        return f"{program} 1.0"

    def tracing_unavailable_reason(self) -> str | None:
        return "no tracepoint in unit tests"

    def drop_caches(self) -> None:
        self.events.append("drop caches")

    def hugepages(self, count: int) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def clear_leftovers(self) -> list[str]:
        return []

    def uring_parameter(self) -> str | None:
        return self.enable_uring

    @contextlib.contextmanager
    def fuse_uring(self) -> Iterator[str]:
        if self.enable_uring is None:
            raise UringUnavailable(uring_missing())
        if self.uring_refused:
            raise UringUnavailable(self.uring_refused)
        before, self.enable_uring = self.enable_uring, "Y"
        self.events.append("enable_uring Y")
        try:
            yield before
        finally:
            self.enable_uring = before
            self.events.append(f"enable_uring {before}")

    # -- targets and measurement

    def target_unavailable_reason(self, target) -> str | None:
        return self.unavailable.get(target.name)

    @contextlib.contextmanager
    def mount(self, target, source: Path, workdir: Path) -> Iterator[MountedTarget]:
        if target.name in self.failing_mounts:
            raise TargetError(f"target {target.name}: server exited with status 2 before mounting")
        self.events.append(f"mount {target.name}")
        stats_file = None
        if self.stats is not None:
            stats_file = stats_path(Path(workdir), target.name)
            stats_file.write_text(json.dumps(self.stats))
            self._stats_files.append(stats_file)
        try:
            yield MountedTarget(name=target.name, type=target.type, path=Path(source), stats_file=stats_file)
        finally:
            self.events.append(f"unmount {target.name}")

    def serve_requests(self) -> None:
        """What the mounted servers count while fio runs: `requests_per_run` more of each opcode."""
        for path in self._stats_files:
            stats = json.loads(path.read_text())
            for opcode, count in self.requests_per_run.items():
                stats["requests"][opcode] = stats["requests"].get(opcode, 0) + count
                if "ring" in stats:  # transport uring: the ring served them
                    stats["ring"]["requests"][opcode] = stats["ring"]["requests"].get(opcode, 0) + count
            for name, count in self.backing_per_run.items():
                stats[name] = stats.get(name, 0) + count
            path.write_text(json.dumps(stats))

    def abort_connection(self, connection: int) -> bool:
        self.events.append(f"abort {connection}")
        return True

    def start_fio(self, argv: list[str]) -> FakeFio:
        return FakeFio(self, argv)

    def start_command(self, argv: list[str], env=None) -> FakeCommand:
        return FakeCommand(self, argv)

    def monitor(self, hz: float, daemon_pid: int | None, run_id: str, role: str) -> FakeMonitor:
        return FakeMonitor(run_id)

    def fd_pressure(self, scenario, source, workdir, write, stop) -> list[FdPressureRecord]:
        """One step per target, N and release, each written with its readings and client report."""
        self.events.append("fd pressure")
        records = []
        for name, count, release in scenario.fd_pressure.steps():
            if stop.requested:
                return records
            record = FdPressureRecord(target=name, release=release, open_files=count, opened=count, failed=0,
                                      status="ok")
            readings = [SnapshotRecord(target=name, open_files=count, phase=phase, file_nr=1000 + held)
                        for phase, held in (("baseline", 0), ("before", 0), ("held", count), ("after", 0))]
            client = {"opened": count, "failed": 0, "errno": None, "wall_s": 0.01, "close_s": 0.001}
            write(record, readings, {**client, "clients": [{**client, "open_ns": [1000] * count}]})
            records.append(record)
        return records


def fails(message: str) -> Callable[[FakeHost, StopToken], None]:
    """A fio run that fails."""
    def effect(host: FakeHost, stop: StopToken) -> None:
        raise FioError(message)
    return effect


def ctrl_c(host: FakeHost, stop: StopToken) -> None:
    """Ctrl-C pressed once while this fio run goes on (the run completes)."""
    host.press_ctrl_c()


def hangs_until_ctrl_c_twice(host: FakeHost, stop: StopToken) -> None:
    """fio hangs; Ctrl-C is pressed twice, which abandons the run."""
    host.press_ctrl_c()
    host.press_ctrl_c()
    while True:
        stop.sleep(0.01)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
