"""Plan and execute a scenario: cells x targets x repetitions, interleaved, into a results folder.

Within each repetition every cell runs on every target back to back. The target order is a
rotation of a seeded shuffle, so that over each block of len(targets) repetitions every
target runs once in every position: drift and position effects (cache, host load, ballooned
memory) spread over the targets instead of biasing one of them. The seed is in the manifest;
`--resume` rebuilds the same plan from it and runs only what is not yet `ok`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bench
from bench import datafiles, fio, leftovers, system
from bench.fusefs import mounts
from bench.columns import RUN_COLUMNS
from bench.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_FAILED, BenchError, InputError
from bench.fdpressure import run_fd_pressure
from bench.fio import FioError, FioResult
from bench.monitor import SAMPLE_COLUMNS, Monitor, MonitorResult
from bench.progress import RunProgress, format_duration
from bench.results import (
    FD_PRESSURE,
    FOLDER_COMPLETE,
    FOLDER_INTERRUPTED,
    FOLDER_RUNNING,
    SCENARIO,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_UNAVAILABLE,
    Manifest,
    ResultsWriter,
    completed_run_ids,
    load_manifest,
)
from bench.scenario import (
    BUILTIN_TYPES,
    Scenario,
    WorkloadCell,
    cell_key,
    parse_scenario,
    scenario_hash,
)
from bench.targets import (
    AnyTarget,
    MountedTarget,
    TargetError,
    open_target,
    target_unavailable_reason,
)
from bench.tracing import RequestTracer, tracing_unavailable_reason
from bench.fusefs.units import format_size
from bench.vocabulary import PATTERNS

DEFAULT_WORKDIR_ROOT = Path("/var/tmp/fusebench")

# Estimated overheads (seconds) for --dry-run and the ETA; measured on the 2-vCPU VM.
MOUNT_S = 1.0
DROP_CACHES_S = 1.5
FIO_START_S = 0.5
PREFILL_BYTES_PER_S = 300 << 20
FD_PRESSURE_STEP_S = 5.0  # fresh mount, open/hold/close, settle, unmount (rough; N-dependent)
# fio gets runtime + ramp + this margin (plus its runtime again) before it is stopped.
FIO_TIMEOUT_MARGIN_S = 60.0
# Past fio's timeout, the FUSE connection is aborted after this long (fio's own stop goes first).
HUNG_DAEMON_ABORT_S = 1.0


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedRun:
    """One measured fio run: a cell on a target in one repetition."""

    run_id: str
    cell: WorkloadCell
    cell_key: str
    target: AnyTarget
    repetition: int
    order: int


@dataclass(frozen=True)
class Plan:
    """Every run in execution order, and the target order each repetition used."""

    seed: int
    repeat: int
    runs: list[PlannedRun]
    target_order: list[list[str]]


def run_id_of(key: str, target: str, repetition: int) -> str:
    """`<cell>--<target>--r<repetition>`: unique within a results folder and file-name safe."""
    return f"{key}--{target}--r{repetition}"


def make_plan(scenario: Scenario, repeat: int, seed: int) -> Plan:
    """cells x targets x repetitions; per repetition, every cell runs on all targets in a shuffled order."""
    rng = random.Random(seed)
    cells = [(cell_key(cell), cell) for cell in scenario.cells()]
    runs: list[PlannedRun] = []
    orders: list[list[str]] = []
    base = list(scenario.targets)
    for repetition in range(1, repeat + 1):
        # Rotations of a shuffled order: over each block of len(targets) repetitions every
        # target runs once in every position. A first run after the previous cell is slower
        # on this VM (cold buffered reads: 0.55 against 2.5-3.3 GB/s), and a plain shuffle put
        # the same target first in all 3 repetitions of a quick run.
        shift = (repetition - 1) % len(base)
        if shift == 0:
            rng.shuffle(base)
        targets = base[shift:] + base[:shift]
        orders.append([target.name for target in targets])
        for key, cell in cells:
            for target in targets:
                runs.append(
                    PlannedRun(run_id_of(key, target.name, repetition), cell, key, target, repetition, len(runs))
                )
    return Plan(seed, repeat, runs, orders)


def run_estimate_s(run: PlannedRun) -> float:
    """Expected wall time of one run: fio time (twice when warm), fio start, cache drop."""
    fio_s = run.cell.runtime + run.cell.ramp_time
    if run.cell.cache == "warm":
        return 2 * (fio_s + FIO_START_S)
    return fio_s + FIO_START_S + DROP_CACHES_S


def estimate_s(plan: Plan, runs: list[PlannedRun] | None = None) -> float:
    """Expected wall time of `runs` (default: the whole plan) including mounts and prefill."""
    runs = plan.runs if runs is None else runs
    mounts = {run.target.name for run in runs if run.target.type != "native"}
    prefill = {run.cell_key: run.cell.size for run in runs}
    return sum(map(run_estimate_s, runs)) + MOUNT_S * len(mounts) + sum(prefill.values()) / PREFILL_BYTES_PER_S


def fd_pressure_steps(scenario: Scenario) -> int:
    """Number of fd-pressure steps (targets x open_files), each on a fresh mount."""
    plan = scenario.fd_pressure
    return len(plan.targets) * len(plan.open_files) if plan else 0


def describe_plan(plan: Plan, scenario: Scenario) -> list[str]:
    """The lines --dry-run prints: totals, target order per repetition, every run."""
    cells = {run.cell_key for run in plan.runs}
    steps = fd_pressure_steps(scenario)
    lines = [
        f"scenario {scenario.name}: {len(cells)} cells x {len(scenario.targets)} targets x "
        f"{plan.repeat} repetitions = {len(plan.runs)} runs, seed {plan.seed}"
        + (f", then {steps} fd-pressure steps" if steps else ""),
        f"estimated duration: {format_duration(estimate_s(plan) + steps * FD_PRESSURE_STEP_S)} "
        f"(fio runtime+ramp, plus per-run fio start and cache drop, mounts, prefill"
        + (", about 5s per fd-pressure step)" if steps else ")"),
    ]
    for repetition, order in enumerate(plan.target_order, 1):
        lines.append(f"repetition {repetition}: targets in order {', '.join(order)}")
    width = len(str(len(plan.runs)))
    for run in plan.runs:
        cell = run.cell
        lines.append(
            f"  {run.order + 1:>{width}}. {run.run_id}  ({cell.rw} bs={format_size(cell.bs)} "
            f"size={format_size(cell.size)} {cell.runtime:g}s {cell.cache})"
        )
    return lines


# ---------------------------------------------------------------- options and entry point


@dataclass(frozen=True)
class RunOptions:
    """What `fusebench run` was asked to do."""

    scenario_path: Path
    out: Path | None = None
    repeat: int | None = None
    resume: bool = False
    dry_run: bool = False
    force: bool = False
    seed: int | None = None
    workdir: Path | None = None


def default_out(scenario: Scenario) -> Path:
    """results/<scenario>-<UTC timestamp>: a new folder per run unless --out says otherwise."""
    return Path("results") / f"{scenario.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


def run(options: RunOptions, *, say: Callable[[str], None] = print) -> int:
    """Execute (or with dry_run, describe) a scenario; the exit status of `fusebench run`."""
    if options.resume and options.out is None:
        raise InputError("--resume needs --out: the results folder to complete")
    text = _read_scenario_text(options.scenario_path)
    scenario = parse_scenario(text, str(options.scenario_path))
    out = options.out or default_out(scenario)
    previous = load_manifest(out) if options.resume else None
    if previous:
        _check_resumable(previous, scenario_hash(text), options)
        seed, repeat = previous.seed, previous.repeat
    else:
        seed = next(s for s in (options.seed, scenario.seed, secrets.randbelow(2**32)) if s is not None)
        repeat = options.repeat or scenario.repeat
    plan = make_plan(scenario, repeat, seed)
    if options.dry_run:
        for line in describe_plan(plan, scenario):
            say(line)
        for target in scenario.targets:
            reason = target_unavailable_reason(target)
            if reason:
                say(f"{target.name}: would be skipped here: {reason}")
        return EXIT_OK
    recorded = Path(previous.workdir) if previous else None  # a resumed run reuses its data files
    workdir = (options.workdir or recorded or scenario.workdir or DEFAULT_WORKDIR_ROOT / scenario.name).absolute()
    session = _Session(scenario, text, plan, out, workdir, previous, options.force, say)
    return session.execute()


def _read_scenario_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the scenario: {exc.strerror}; check the path") from None


def _check_resumable(manifest: Manifest, digest: str, options: RunOptions) -> None:
    if manifest.scenario_hash != digest:
        raise InputError(
            f"{options.scenario_path} changed since {options.out} was started (hash {digest} != "
            f"{manifest.scenario_hash}); resume with the scenario.yaml kept in that folder, or start a new --out"
        )
    for flag, asked, recorded in (
        ("--repeat", options.repeat, manifest.repeat),
        ("--seed", options.seed, manifest.seed),
    ):
        if asked is not None and asked != recorded:
            raise InputError(
                f"{flag} {asked} differs from the {recorded} that {options.out} was started with; drop {flag} to resume"
            )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- execution


@dataclass(frozen=True)
class _Measured:
    """What one measured fio run produced."""

    fio: FioResult
    monitor: MonitorResult
    requests: dict[str, Any]  # fuse_* and passthrough_engaged columns
    duration_s: float  # wall time of the measured fio run


class _Interrupted(Exception):
    """A second Ctrl-C/SIGTERM: abandon the current run now (mounts still come down)."""


class _Mounts:
    """Targets mounted once for the whole run and unmounted on every exit path."""

    def __init__(self, source: Path, workdir: Path) -> None:
        self._source = source
        self._workdir = workdir
        self._stacks: dict[str, contextlib.ExitStack] = {}
        self._mounted: dict[str, MountedTarget] = {}
        self._failed: dict[str, str] = {}

    def get(self, target: AnyTarget) -> MountedTarget:
        """The mounted target, mounting it on first use; a mount that failed once is not retried."""
        if target.name in self._failed:
            raise TargetError(f"mount failed earlier: {self._failed[target.name]}")
        if target.name not in self._mounted:
            stack = contextlib.ExitStack()
            try:
                self._mounted[target.name] = stack.enter_context(open_target(target, self._source, self._workdir))
            except TargetError as exc:
                stack.close()
                self._failed[target.name] = str(exc)
                raise
            self._stacks[target.name] = stack
        return self._mounted[target.name]

    def release(self, name: str) -> None:
        """Unmount one target (after a failed run: the next run gets a fresh daemon)."""
        self._mounted.pop(name, None)
        stack = self._stacks.pop(name, None)
        if stack:
            stack.close()

    def close(self) -> None:
        """Unmount everything still mounted."""
        for name in list(self._stacks):
            self.release(name)


class _Session:
    """One invocation of `fusebench run` that writes (or resumes) a results folder."""

    def __init__(
        self,
        scenario: Scenario,
        text: str,
        plan: Plan,
        out: Path,
        workdir: Path,
        previous: Manifest | None,
        force: bool,
        say: Callable[[str], None],
    ) -> None:
        self.scenario = scenario
        self.text = text
        self.plan = plan
        self.out = out
        self.workdir = workdir
        self.source = workdir / "source"
        self.previous = previous
        self.force = force
        self.say = say
        self._signals_seen = 0
        self._in_abortable_wait = False
        self._tracepoint = False
        self._files: dict[str, list[Path]] = {}

    # -- orchestration

    def execute(self) -> int:
        self._preflight()
        with self._lock_workdir():
            for message in leftovers.clear_leftovers():
                self.say(f"cleared leftover of an earlier run: {message}")
            unavailable = self._check_targets()
            writer, manifest, pending = self._open_results()
            manifest.skipped_targets = {name: reason for name, reason in unavailable.items() if reason}
            self._tracepoint = self._tracepoint_usable()
            outcome = self._run_all(pending, unavailable, manifest, writer)
        return self._finish(manifest, outcome)

    def _run_all(
        self, pending: list[PlannedRun], unavailable: dict[str, str | None], manifest: Manifest, writer: ResultsWriter
    ) -> str:
        """Every pending run, then fd pressure; the folder status to record. Mounts come down on every path."""
        measured = {run.run_id for run in pending if not unavailable[run.target.name]}
        progress = RunProgress(len(pending), estimate_s(self.plan, [r for r in pending if r.run_id in measured]))
        say, self.say = self.say, progress.message
        mounts = _Mounts(self.source, self.workdir)
        outcome = manifest.status  # stays "running" if an unexpected error escapes: --resume completes it
        try:
            with self._signals():
                for run in pending:
                    if self.stop_requested:
                        break
                    progress.start_run(f"{run.cell_key} on {run.target.name} (r{run.repetition})")
                    row, samples = self._one_run(run, unavailable, mounts, writer)
                    writer.append_run(row)
                    if samples:
                        writer.append_samples(samples, SAMPLE_COLUMNS)
                    manifest.runs[run.run_id] = row["status"]
                    writer.write_manifest(manifest)
                    progress.finish_run(_summary(run, row), run_estimate_s(run) if run.run_id in measured else 0.0)
                mounts.close()  # fd pressure mounts its targets afresh for every step
                if not self.stop_requested:
                    self._fd_pressure(manifest, writer)
                outcome = FOLDER_INTERRUPTED if self.stop_requested else FOLDER_COMPLETE
        except _Interrupted:
            outcome = FOLDER_INTERRUPTED
        finally:
            mounts.close()
            progress.close()
            self.say = say
            manifest.status = outcome
            manifest.ended_at = _now()
            writer.write_manifest(manifest)
        return outcome

    def _preflight(self) -> None:
        if fio.fio_version() is None:
            raise InputError("fio was not found on PATH; install it (apt-get install fio, or `make setup`)")
        if any(cell.cache == "cold" for cell in self.scenario.cells()) and not system.is_root():
            raise InputError("cold-cache runs drop the page cache, which needs root; run as root or set cache: warm")

    def _open_results(self) -> tuple[ResultsWriter, Manifest, list[PlannedRun]]:
        if self.previous:
            writer = ResultsWriter.reopen(self.out)
            manifest = self.previous
            done = completed_run_ids(self.out)
            pending = [run for run in self.plan.runs if run.run_id not in done]
            writer.drop_runs(run.run_id for run in pending)
            manifest.runs = {run_id: status for run_id, status in manifest.runs.items() if run_id in done}
            manifest.notes.append(f"{_now()}: resumed; {len(done)} runs kept, {len(pending)} to run")
            self.say(f"resuming {self.out}: {len(done)} runs already ok, {len(pending)} to run")
        else:
            writer = ResultsWriter.create(self.out, force=self.force)
            writer.write_scenario(self.text)
            manifest = Manifest(
                scenario=self.scenario.name,
                scenario_hash=scenario_hash(self.text),
                seed=self.plan.seed,
                repeat=self.plan.repeat,
                plan=[
                    {"run_id": r.run_id, "cell": r.cell_key, "target": r.target.name, "repetition": r.repetition}
                    for r in self.plan.runs
                ],
                target_order=self.plan.target_order,
                host=system.host_info(),
                fio_version=fio.fio_version(),
                tool_version=bench.__version__,
                workdir=str(self.workdir),
                started_at=_now(),
                fd_pressure="pending" if self.scenario.fd_pressure else None,
            )
            pending = list(self.plan.runs)
        manifest.status = FOLDER_RUNNING
        manifest.ended_at = None
        writer.write_manifest(manifest)
        self.say(f"writing {writer.folder} (seed {self.plan.seed}, {len(pending)} runs)")
        return writer, manifest, pending

    def _check_targets(self) -> dict[str, str | None]:
        """target name -> why it cannot run here (None: it can); each skip is said once."""
        reasons = {target.name: target_unavailable_reason(target) for target in self.scenario.targets}
        for name, reason in reasons.items():
            if reason:
                self.say(f"{name}: skipped: {reason}")
        if self.scenario.workloads and all(reasons.values()):
            raise InputError(
                "no target of this scenario can run here (see above); `fusebench doctor` says what is missing"
            )
        return reasons

    def _tracepoint_usable(self) -> bool:
        """Whether external targets' FUSE requests can be counted at the tracepoint; says why not."""
        if not any(target.type == "external" for target in self.scenario.targets):
            return False
        reason = tracing_unavailable_reason()
        if reason:
            self.say(f"FUSE requests of external targets will not be counted: {reason}")
        return reason is None

    def _finish(self, manifest: Manifest, outcome: str) -> int:
        statuses = list(manifest.runs.values())
        counts = {status: statuses.count(status) for status in (STATUS_OK, STATUS_FAILED, STATUS_UNAVAILABLE)}
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        if outcome == FOLDER_INTERRUPTED:
            self.say(
                f"interrupted: {self.out} keeps {summary or 'no runs'} of {len(self.plan.runs)} planned; "
                f"complete it with: fusebench run {self.out / SCENARIO} --out {self.out} --resume"
            )
            return EXIT_INTERRUPTED
        fd_pressure = f", fd pressure {manifest.fd_pressure}" if manifest.fd_pressure else ""
        self.say(f"done: {summary or 'no runs'}{fd_pressure} in {self.out}")
        if counts[STATUS_FAILED] or manifest.fd_pressure == STATUS_FAILED:
            self.say(f"some runs failed; their `error` column in {self.out / 'runs.csv'} says why")
            return EXIT_FAILED
        return EXIT_OK

    # -- one run

    def _one_run(
        self,
        run: PlannedRun,
        unavailable: dict[str, str | None],
        mounts: _Mounts,
        writer: ResultsWriter,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute one run: its runs.csv row and samples.csv rows; a failure is a row, not an exception."""
        row = _base_row(run)
        reason = unavailable[run.target.name]
        if reason:
            row.update(status=STATUS_UNAVAILABLE, error=reason)
            return row, []
        try:
            files = self._prepare(run)
            mounted = mounts.get(run.target)
            measured = self._measure(run, mounted, files, writer)
        except (BenchError, OSError) as exc:
            if run.target.type != "native":
                mounts.release(run.target.name)  # the next run of this target gets a fresh daemon
            row.update(status=STATUS_FAILED, error=_one_line(exc))
            return row, []
        _fill_fio(row, run.cell, measured.fio)
        row.update({key: value for key, value in measured.monitor.summary.items() if key in row})
        row.update(measured.requests)
        row.update(status=STATUS_OK, duration_s=round(measured.duration_s, 3))
        return row, measured.monitor.samples

    def _prepare(self, run: PlannedRun) -> list[Path]:
        """The cell's data files (relative to the source directory), created on first use."""
        if run.cell_key not in self._files:
            self.source.mkdir(parents=True, exist_ok=True)
            self.say(f"preparing data files for {run.cell_key} ({format_size(run.cell.size)}) in {self.source}")
            with self._abortable():  # an interrupted fill is never reused (bench.datafiles)
                self._files[run.cell_key] = list(datafiles.prepare_files(run.cell, self.source))
        return self._files[run.cell_key]

    def _measure(self, run: PlannedRun, mounted: MountedTarget, files: list[Path], writer: ResultsWriter) -> _Measured:
        """Cache state, counters before, fio under the monitor, counters after."""
        paths = [Path(mounted.path) / rel for rel in files]
        if run.cell.cache == "cold":
            system.drop_caches()
        else:
            scratch = self.workdir / "scratch"
            scratch.mkdir(parents=True, exist_ok=True)
            self._run_fio(run.cell, paths, scratch / "warmup.json", mounted)
        sampler = Monitor(hz=self.scenario.sample_hz, daemon_pid=mounted.daemon_pid, run_id=run.run_id)
        with _RequestCounter(run.target, mounted, self._tracepoint) as counter:
            started = time.monotonic()
            result, sampled = self._run_fio(run.cell, paths, writer.fio_output_path(run.run_id), mounted, sampler)
            duration_s = time.monotonic() - started
        assert sampled is not None
        return _Measured(result, sampled, counter.columns(), duration_s)

    def _run_fio(
        self,
        cell: WorkloadCell,
        paths: list[Path],
        output: Path,
        mounted: MountedTarget,
        sampler: Monitor | None = None,
    ) -> tuple[FioResult, MonitorResult | None]:
        """Run fio to completion under a timeout (stopped and reaped on every exit path).

        fio blocked on a FUSE daemon that stopped answering cannot be killed, so past the
        timeout the mount's connection is aborted: the blocked I/O fails and fio exits.
        """
        timeout = 2 * (cell.runtime + cell.ramp_time) + FIO_TIMEOUT_MARGIN_S
        aborted = threading.Event()

        def abort_hung_connection(connection: int) -> None:
            aborted.set()
            mounts.abort_connection(connection)

        watchdog = threading.Timer(timeout + HUNG_DAEMON_ABORT_S, abort_hung_connection, args=(mounted.connection,))
        watchdog.daemon = True
        sampled = None
        pages = fio.hugepages_needed(cell) if cell.buffers == "hugepages" else 0
        with system.hugepages(pages):
            proc = fio.start_fio(fio.build_argv(cell, paths, output))
            try:
                if sampler is not None:
                    sampler.start(proc.pid)
                if mounted.connection is not None:
                    watchdog.start()
                with self._abortable():
                    result = fio.wait_fio(proc, output, timeout)
            except FioError as exc:
                if aborted.is_set():
                    raise FioError(f"{exc}; the FUSE daemon stopped answering, so its connection was aborted") from None
                raise
            finally:
                watchdog.cancel()
                fio.stop_fio(proc)
                if sampler is not None:
                    sampled = sampler.stop()
        return result, sampled

    # -- fd pressure

    def _fd_pressure(self, manifest: Manifest, writer: ResultsWriter) -> None:
        """The scenario's fd-limit experiments (bench.fdpressure), unless a previous attempt completed them."""
        if not self.scenario.fd_pressure or manifest.fd_pressure == STATUS_OK:
            return
        set_aside = writer.set_aside(FD_PRESSURE)
        if set_aside:
            manifest.notes.append(f"fd_pressure: rows of an unfinished attempt moved to {set_aside.name}")

        def write_row(row: dict[str, Any]) -> None:
            # run_fd_pressure has no stop hook: a stop signal takes effect between its steps.
            self._in_abortable_wait = False
            try:
                writer.append_fd_pressure(row)
            finally:
                self._in_abortable_wait = True
            if self.stop_requested:
                raise _Interrupted()

        with self._abortable():
            rows = run_fd_pressure(self.scenario, self.source, self.workdir, write_row=write_row, progress=self.say)
        failed = [row for row in rows if row["status"] == STATUS_FAILED]
        manifest.fd_pressure = STATUS_FAILED if failed else STATUS_OK
        if failed:
            manifest.notes.append(f"fd_pressure: {len(failed)} of {len(rows)} steps failed (see fd_pressure.csv)")

    # -- signals and locking

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """First SIGINT/SIGTERM: finish the current run, then stop. Second: abandon the run now."""

        def handler(signum: int, frame: Any) -> None:
            self._signals_seen += 1
            if self._signals_seen == 1:
                self.say(
                    f"{signal.Signals(signum).name}: stopping after the current run; press Ctrl-C again to abort it now"
                )
            elif self._in_abortable_wait:
                raise _Interrupted()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    @property
    def stop_requested(self) -> bool:
        """A stop signal arrived: no new run starts."""
        return self._signals_seen > 0

    @contextlib.contextmanager
    def _abortable(self) -> Iterator[None]:
        # Only a wait for fio may be abandoned; elsewhere a second signal must not tear a CSV row
        # or leave a process behind, and the loop stops at the next run anyway.
        if self._signals_seen > 1:
            raise _Interrupted()
        self._in_abortable_wait = True
        try:
            yield
        finally:
            self._in_abortable_wait = False

    @contextlib.contextmanager
    def _lock_workdir(self) -> Iterator[None]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    f"another fusebench run is using {self.workdir}; wait for it or pass --workdir"
                ) from None
            yield


class _RequestCounter:
    """FUSE READ/WRITE/other requests during a run: built-in server stats, else the tracepoint."""

    def __init__(self, target: AnyTarget, mounted: MountedTarget, tracepoint: bool) -> None:
        self._target = target
        self._mounted = mounted
        self._tracepoint = tracepoint
        self._before: dict[str, int] = {}
        self._after: dict[str, int] | None = None
        self._tracer: RequestTracer | None = None
        self._source = ""

    def __enter__(self) -> _RequestCounter:
        if self._target.type == "native":
            return self
        if self._mounted.stats_file is not None:
            stats = self._mounted.read_stats(newer_than=0.0)
            if stats is not None:
                self._source, self._before = "server", dict(stats.get("requests", {}))
        elif self._tracepoint:
            with contextlib.suppress(BenchError):  # counting is optional; the run is not
                self._tracer = RequestTracer(self._mounted.connection).start()
                self._source = "tracepoint"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._source == "server":
            self._after = dict((self._mounted.read_stats(newer_than=time.time()) or {}).get("requests", {}))
        elif self._tracer is not None:
            self._after = dict(self._tracer.counts())
            self._tracer.close()

    def columns(self) -> dict[str, Any]:
        """fuse_* and passthrough_engaged columns (none when nothing counted the requests)."""
        if self._after is None:
            return {}
        delta = {op: n - self._before.get(op, 0) for op, n in self._after.items()}
        reads, writes = delta.get("READ", 0), delta.get("WRITE", 0)
        engaged = (reads + writes == 0) if self._target.type == "passthrough" else None
        return {
            "fuse_read_requests": reads,
            "fuse_write_requests": writes,
            "fuse_other_requests": sum(delta.values()) - reads - writes,
            "fuse_requests_source": self._source,
            "passthrough_engaged": engaged,
        }


def _base_row(run: PlannedRun) -> dict[str, Any]:
    cell, target = run.cell, run.target
    row: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
    row.update(
        run_id=run.run_id,
        workload=cell.name,
        cell=run.cell_key,
        sweep=json.dumps(cell.sweep, sort_keys=True),
        target=target.name,
        target_type=target.type,
        repetition=run.repetition,
        order=run.order,
        started_at=_now(),
        rw=cell.rw,
        bs=format_size(cell.bs),
        iodepth=cell.iodepth,
        ioengine=cell.ioengine,
        direct=cell.direct,
        numjobs=cell.numjobs,
        nrfiles=cell.nrfiles,
        cache=cell.cache,
        fd_policy=getattr(target, "fd_policy", None),
        xattr=getattr(target, "xattr", None) if target.type in BUILTIN_TYPES else None,
    )
    return row


def _fill_fio(row: dict[str, Any], cell: WorkloadCell, result: FioResult) -> None:
    pattern = PATTERNS[cell.rw]
    for prefix, direction, used in (("read", result.read, pattern.reads), ("write", result.write, pattern.writes)):
        if not used:
            continue
        row[f"{prefix}_bw_mib_s"] = direction.bw_mib_s
        row[f"{prefix}_iops"] = direction.iops
        row[f"{prefix}_io_bytes"] = direction.io_bytes
        for stat in ("clat_mean_us", "clat_p50_us", "clat_p99_us", "clat_p999_us", "lat_mean_us"):
            row[f"{prefix}_{stat}"] = getattr(direction, stat)
    row.update(
        fio_usr_cpu_pct=result.usr_cpu,
        fio_sys_cpu_pct=result.sys_cpu,
        fio_ctx=result.ctx,
        fio_runtime_s=result.runtime_s,
    )


def _summary(run: PlannedRun, row: dict[str, Any]) -> str:
    """One progress line: what ran and its headline figures."""
    head = f"{run.cell_key} on {run.target.name} r{run.repetition}: {row['status']}"
    if row["status"] == STATUS_UNAVAILABLE:
        return head  # the reason was said once, before the first run
    if row["status"] == STATUS_FAILED:
        return f"{head}: {row['error']}"
    figures = [
        f"{prefix} {row[f'{prefix}_bw_mib_s']:.0f} MiB/s {row[f'{prefix}_iops']:.0f} IOPS"
        for prefix in ("read", "write")
        if row[f"{prefix}_bw_mib_s"] is not None
    ]
    if row["passthrough_engaged"] is not None:
        figures.append(f"passthrough {'engaged' if row['passthrough_engaged'] else 'NOT engaged'}")
    return f"{head}, {', '.join(figures)}"


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:]) if lines else type(exc).__name__
