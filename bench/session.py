"""One invocation of `fusebench run`: executing (or resuming) a plan into a results folder on a
Host, with targets mounted once and remounted after a failure, failures recorded as rows,
fd pressure after the runs, and stop signals taken through a StopToken."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bench
from bench import stopping
from bench.datafiles import bytes_to_write, data_dir, tree_digest
from bench.environment import DiskCounters, differences
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError, InputError
from bench.fusefs.units import GIB
from bench.host import Host
from bench.measure import Done, Measured, measure
from bench.plan import (
    Plan,
    PlannedRun,
    estimate_s,
    fd_pressure_steps,
    run_estimate_s,
)
from bench.programs import Program
from bench.records import (
    FOLDER_COMPLETE,
    FOLDER_INTERRUPTED,
    FOLDER_RUNNING,
    FORMAT_VERSION,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_UNAVAILABLE,
    AutoRule,
    AutoState,
    CommandRecord,
    DiskFigures,
    FioFigures,
    Manifest,
    PlanEntry,
    RequestRecord,
    RunInfo,
    RunRecord,
    SampleRecord,
    TargetSettings,
    UringParameter,
    WorkFigures,
    WorkloadAsRun,
    WorkloadKind,
    sweep_text,
)
from bench.results import (
    FD_PRESSURE,
    FD_SNAPSHOTS,
    SCENARIO,
    ResultsFolder,
    ResultsWriter,
)
from bench.scenario import (
    MODE_OF_TYPE,
    AnyTarget,
    Cell,
    Opens,
    Scenario,
    describe_target,
    needs_uring,
    scenario_hash,
)
from bench.stop import Interrupted, StopToken
from bench.targets import MountedTarget, TargetError
from bench.vocabulary import FIO
from bench.workspace import LOCK, SCRATCH, SOURCE, claim_workdir


class MountedTargets:
    """Targets mounted once for the whole run and unmounted on every exit path."""

    def __init__(self, host: Host, source: Path, workdir: Path) -> None:
        self._host = host
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
                self._mounted[target.name] = stack.enter_context(self._host.mount(target, self._source, self._workdir))
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


class Session:
    """Writes (or completes, with `previous`) one results folder from a plan."""

    def __init__(self, host: Host, scenario: Scenario, text: str, plan: Plan, out: Path, workdir: Path,
                 previous: Manifest | None, force: bool) -> None:
        self.host = host
        self.scenario = scenario
        self.text = text
        self.plan = plan
        self.out = out
        self.workdir = workdir
        self.source = workdir / SOURCE
        self.scratch = workdir / SCRATCH
        self.previous = previous
        self.force = force
        self.stop = StopToken()
        self.say = host.say
        self._tracing = False
        self._prepared: set[str] = set()
        self._missing_tools: dict[str, str] = {}
        self._device: str | None = None  # the block device under the source directory
        self.manifest: Manifest | None = None

    # -- orchestration

    def execute(self) -> int:
        """Run what is pending; the exit status of `fusebench run`."""
        self._preflight()
        with self._lock_workdir():
            for message in self.host.clear_leftovers():
                self.say(f"cleared leftover of an earlier run: {message}")
            unavailable = self._check_targets()
            self._missing_tools = self._check_programs()
            writer, manifest, pending = self._open_results()
            self.manifest = manifest
            self.source.mkdir(parents=True, exist_ok=True)
            self._device = self.host.disk_device(self.source)
            manifest.skipped_targets = {name: reason for name, reason in unavailable.items() if reason}
            self._tracing = self._tracing_usable()
            with self._uring(manifest, unavailable):
                outcome = self._run_all(pending, unavailable, manifest, writer)
        return self._finish(manifest, outcome)

    @contextlib.contextmanager
    def _uring(self, manifest: Manifest, unavailable: dict[str, str | None]) -> Iterator[None]:
        """FUSE over io_uring turned on for every run and fd-pressure step when a target that can
        run needs it (its earlier value written back after, on every path), and recorded in the
        manifest."""
        if not any(needs_uring(target) and not unavailable[target.name] for target in self.scenario.targets):
            manifest.enable_uring = None
            yield
            return
        with self.host.fuse_uring() as before:
            manifest.enable_uring = UringParameter(before=before, during=self.host.uring_parameter())
            if before != "Y":
                self.say(f"FUSE over io_uring turned on for the run (enable_uring {before} -> Y; put back after)")
            yield

    def _run_all(self, pending: list[PlannedRun], unavailable: dict[str, str | None], manifest: Manifest,
                 writer: ResultsWriter) -> str:
        """Every pending run, repetition by repetition (with `repeat: auto`, while a comparison is
        undecided), then fd pressure; the folder status to record. Mounts come down on every path."""
        todo = {run.run_id for run in pending}

        def measured(runs: list[PlannedRun]) -> list[PlannedRun]:
            return [run for run in runs if not (unavailable[run.target.name] or self._missing_tools.get(run.cell.name))]

        started = [run for run in pending if run.repetition <= manifest.repeat]
        progress = self.host.progress(len(started), estimate_s(self.plan, measured(started)))
        say, self.say = self.say, progress.message
        mounts = MountedTargets(self.host, self.source, self.workdir)
        outcome = manifest.status  # stays "running" if an unexpected error escapes: --resume completes it
        began, spent_before = self.host.monotonic(), manifest.auto.elapsed_s if manifest.auto else 0.0

        def count_time() -> None:  # every second of this session counts against `max_time`
            if manifest.auto:
                manifest.auto.elapsed_s = round(spent_before + self.host.monotonic() - began, 1)

        try:
            with self.host.stop_signals(self.stop, self._on_first_signal):
                for number in range(1, self.plan.repeat + 1):
                    for run in self.plan.repetition(number):
                        if self.stop.requested:
                            break
                        if run.run_id not in todo:
                            continue
                        progress.start_run(f"{run.cell_key} on {run.target.name} (r{run.repetition})")
                        record, samples, requests, command = self._one_run(run, unavailable, mounts, writer)
                        writer.append_run(record, samples, requests, command)
                        manifest.runs[run.run_id] = record.info.status
                        writer.write_manifest(manifest)
                        progress.finish_run(_summary(run, record), run_estimate_s(run) if measured([run]) else 0.0)
                    if self.stop.requested:
                        break
                    if self.plan.auto is None or number < manifest.repeat:
                        continue
                    count_time()
                    if self._enough(manifest, writer, number):
                        break
                    block = self.plan.repetition(number + 1)
                    manifest.plan += [_entry(run) for run in block]
                    manifest.repeat = number + 1
                    writer.write_manifest(manifest)
                    progress.extend(len(block), estimate_s(self.plan, measured(block)))
                mounts.close()  # fd pressure mounts its targets afresh for every step
                if not self.stop.requested:
                    self._fd_pressure(manifest, writer)
                outcome = FOLDER_INTERRUPTED if self.stop.requested else FOLDER_COMPLETE
        except Interrupted:
            outcome = FOLDER_INTERRUPTED
        finally:
            count_time()
            mounts.close()
            progress.close()
            self.say = say
            manifest.status = outcome
            manifest.ended_at = self._now()
            writer.write_manifest(manifest)
        return outcome

    def _enough(self, manifest: Manifest, writer: ResultsWriter, repetitions: int) -> bool:
        """`repeat: auto`: judge every comparison with the baseline after `repetitions`; whether to stop."""
        auto, state = self.plan.auto, manifest.auto
        decided = stopping.verdicts(writer.folder)
        state.undecided = sorted(pair for pair, verdict in decided.items() if verdict == stopping.UNDECIDED)
        state.stopped = stopping.stop_reason(decided, auto, repetitions, state.elapsed_s)
        writer.write_manifest(manifest)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(Counter(decided.values()).items()))
        if state.stopped is None:
            self.say(f"after {repetitions} repetitions: {counts or 'nothing to compare'}; adding repetition "
                     f"{repetitions + 1}")
        else:
            self.say(f"after {repetitions} repetitions: {counts or 'nothing to compare'}; stopping ({state.stopped})")
        return state.stopped is not None

    def _on_first_signal(self, name: str) -> None:
        self.say(f"{name}: stopping after the current run; press Ctrl-C again to abort it now")

    def _now(self) -> str:
        return self.host.now().isoformat(timespec="seconds")

    def _preflight(self) -> None:
        if self.host.fio_version() is None:
            raise InputError("fio was not found on PATH; install it (apt-get install fio, or `make setup`)")
        if any(cell.cache == "cold" for cell in self.scenario.cells()) and not self.host.is_root():
            raise InputError("cold-cache runs drop the page cache, which needs root; run as root or set cache: warm")
        fio_cells = [cell for cell in self.scenario.cells() if cell.family == FIO]  # programs' trees are ~70 MB
        needed, free = bytes_to_write(fio_cells, self.source), self.host.free_bytes(self.workdir)
        if needed > free:
            raise InputError(f"the data files need {needed / GIB:.1f} GiB more than {self.source} holds, and its "
                             f"file system has {free / GIB:.1f} GiB free; free some space, lower the workloads' "
                             "`size`, or pass --workdir on a larger file system")

    def _open_results(self) -> tuple[ResultsWriter, Manifest, list[PlannedRun]]:
        if self.previous:
            writer = ResultsWriter.reopen(self.out)
            manifest = self.previous
            done = ResultsFolder(self.out).completed_run_ids()
            pending = [run for run in self.plan.runs if run.run_id not in done]
            writer.drop_runs(run.run_id for run in pending)
            manifest.runs = {run_id: status for run_id, status in manifest.runs.items() if run_id in done}
            todo = sum(run.repetition <= manifest.repeat for run in pending)  # with auto: of the started repetitions
            manifest.notes.append(f"{self._now()}: resumed by fusebench {bench.__version__}; {len(done)} runs kept, "
                                  f"{todo} to run")
            manifest.format_version = FORMAT_VERSION  # what is written from now on
            changed = [key for key, _, _ in differences(manifest.environment, self.host.environment(self.workdir))]
            if manifest.environment and changed:
                manifest.notes.append(f"{self._now()}: the environment changed since the run began: "
                                      f"{', '.join(changed[:12])}{' ...' if len(changed) > 12 else ''}")
            self.say(f"resuming {self.out}: {len(done)} runs already ok, {todo} to run")
        else:
            writer = ResultsWriter.create(self.out, force=self.force)
            writer.write_scenario(self.text)
            first = self.plan.auto.min_repeat if self.plan.auto else self.plan.repeat
            manifest = Manifest(
                scenario=self.scenario.name,
                scenario_hash=scenario_hash(self.text),
                seed=self.plan.seed,
                repeat=first,
                plan=[_entry(run) for run in self.plan.runs if run.repetition <= first],
                auto=_auto_state(self.plan.auto),
                target_order=self.plan.target_order,
                host=self.host.host_info(),
                environment=self.host.environment(self.workdir),
                fio_version=self.host.fio_version(),
                tool_version=bench.__version__,
                workdir=str(self.workdir),
                started_at=self._now(),
                fd_pressure="pending" if self.scenario.fd_pressure else None,
            )
            pending = list(self.plan.runs)
        manifest.status = FOLDER_RUNNING
        manifest.ended_at = None
        writer.write_manifest(manifest)
        now = sum(run.repetition <= manifest.repeat for run in pending)
        budget = f", up to {len(pending)} with repeat: auto" if self.plan.auto and now < len(pending) else ""
        self.say(f"writing {writer.folder} (seed {self.plan.seed}, {now} runs{budget})")
        return writer, manifest, pending

    def _check_targets(self) -> dict[str, str | None]:
        """target name -> why it cannot run here (None: it can); each skip is said once."""
        reasons = {target.name: self.host.target_unavailable_reason(target) for target in self.scenario.targets}
        for name, reason in reasons.items():
            if reason:
                self.say(f"{name}: skipped: {reason}")
        if self.scenario.workloads and all(reasons.values()):
            raise InputError(
                "no target of this scenario can run here (see above); `fusebench doctor` says what is missing"
            )
        return reasons

    def _check_programs(self) -> dict[str, str]:
        """program workload name -> why it cannot run here (a command it needs is missing); said once."""
        reasons = {program.name: why for program in self.scenario.programs if (why := program.unavailable_reason())}
        for name, reason in reasons.items():
            self.say(f"{name}: skipped: {reason}")
        return reasons

    def _tracing_usable(self) -> bool:
        """Whether external targets' FUSE requests can be counted at the tracepoint; says why not."""
        if not any(target.type == "external" for target in self.scenario.targets):
            return False
        reason = self.host.tracing_unavailable_reason()
        if reason:
            self.say(f"FUSE requests of external targets will not be counted: {reason}")
        return reason is None

    def _finish(self, manifest: Manifest, outcome: str) -> int:
        statuses = list(manifest.runs.values())
        counts = {status: statuses.count(status) for status in (STATUS_OK, STATUS_FAILED, STATUS_UNAVAILABLE)}
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        if outcome == FOLDER_INTERRUPTED:
            self.say(
                f"interrupted: {self.out} keeps {summary or 'no runs'} of {len(manifest.plan)} planned; "
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

    def _one_run(self, run: PlannedRun, unavailable: dict[str, str | None], mounts: MountedTargets,
                 writer: ResultsWriter) -> tuple[RunRecord, list[SampleRecord], list[RequestRecord], CommandRecord | None]:
        """Execute one run: its runs.csv record, samples, per-opcode requests and command line; a
        failure is a record, not an exception."""
        info = RunInfo(run_id=run.run_id, workload=run.cell.name, cell=run.cell_key, sweep=sweep_text(getattr(run.cell, "sweep", {})),
                       target=run.target.name, target_type=run.target.type, repetition=run.repetition,
                       order=run.order, started_at=self._now(), status=STATUS_OK)
        kind = WorkloadKind(family=run.cell.family, program=getattr(run.cell, "program", None))
        head = {"workload": WorkloadAsRun.of(run.cell), "target": _settings(run.target), "kind": kind}
        reason = unavailable[run.target.name] or self._missing_tools.get(run.cell.name)
        if reason:
            info = info.changed(status=STATUS_UNAVAILABLE, error=reason)
            return RunRecord(info=info, **head), [], [], None
        try:
            paths, start_tree = self._prepare(run)
            head["kind"] = kind.changed(start_tree=start_tree)
            mounted = mounts.get(run.target)
            if run.target.name not in self.manifest.targets:
                self.manifest.targets[run.target.name] = self._target_facts(run.target, mounted)
            family = run.cell.family
            measured = measure(self.host, run, mounted, paths, writer.output_path(run.run_id, family),
                               self.scratch, self.scenario.sample_hz, self._tracing, self.stop, self._device,
                               writer.logs_prefix(run.run_id, family))
        except (BenchError, OSError) as exc:
            if run.target.type != "native":
                mounts.release(run.target.name)  # the next run of this target gets a fresh daemon
            info = info.changed(status=STATUS_FAILED, error=_one_line(exc))
            return RunRecord(info=info, **head), [], [], None
        done = measured.done
        info = info.changed(status=STATUS_OK, duration_s=round(done.wall_s, 3))
        record = RunRecord(info=info, fio=FioFigures.of(done.fio, run.cell.rw) if done.fio else FioFigures(),
                           monitor=measured.monitor.summary,
                           requests=measured.requests.totals(uncached_requests(run.cell, done)),
                           work=_work(measured), disk=_disk(measured.disk), transport=measured.requests.transport(),
                           **head)
        command = CommandRecord(run_id=run.run_id, argv=json.dumps(done.argv))
        return record, measured.monitor.samples, measured.requests.records(run.run_id), command

    def _target_facts(self, target: AnyTarget, mounted: MountedTarget) -> dict[str, Any]:
        """What the manifest says of a target: what it is, and what its connection negotiated
        (the built-in server's INIT) or what the external server says it is."""
        facts: dict[str, Any] = {"type": target.type, "description": describe_target(target)}
        stats = mounted.read_stats(newer_than=0.0) if mounted.stats_file is not None else None
        if stats and stats.get("init"):
            facts["init"] = stats["init"]
        if target.type == "external":
            facts.update(argv=list(target.command), version=self.host.program_version(target.command[0]))
        return facts

    def _prepare(self, run: PlannedRun) -> tuple[list[Path], str]:
        """Bring the cell's files to the state every run starts from (outside the measured time):
        the paths the run needs (relative to the source directory) and a digest of that state."""
        cell, source = run.cell, self.source
        first = run.cell_key not in self._prepared
        if first:
            source.mkdir(parents=True, exist_ok=True)
            self.say(f"preparing the files of {run.cell_key} in {source}")
        if isinstance(cell, Program):
            if first:
                self.host.prepare_program(cell, source, self.scratch, self.stop)
            self.host.reset_program(cell, source)
            paths, directories = [], [cell.tree.path_in(source), cell.cell_dir(source)]
        elif isinstance(cell, Opens):
            paths = [self.host.prepare_opens(cell, source)]
            directories = [source / paths[0]]
        else:
            paths = list(self.host.prepare_files(cell, source, self.stop))
            directories = [source / data_dir(cell)]
        self._prepared.add(run.cell_key)
        return paths, tree_digest(*directories)

    # -- fd pressure

    def _fd_pressure(self, manifest: Manifest, writer: ResultsWriter) -> None:
        """The scenario's fd-limit experiments, unless a previous attempt completed them."""
        if not self.scenario.fd_pressure or manifest.fd_pressure == STATUS_OK:
            return
        for aside in writer.set_aside(FD_PRESSURE, FD_SNAPSHOTS):
            manifest.notes.append(f"fd_pressure: rows of an unfinished attempt moved to {aside.name}")
        records = self.host.fd_pressure(self.scenario, self.source, self.workdir, writer.append_fd_pressure, self.stop)
        if len(records) < fd_pressure_steps(self.scenario):
            return  # stopped before the last step: --resume runs fd pressure again
        failed = [record for record in records if record.status == STATUS_FAILED]
        manifest.fd_pressure = STATUS_FAILED if failed else STATUS_OK
        if failed:
            manifest.notes.append(f"fd_pressure: {len(failed)} of {len(records)} steps failed (see fd_pressure.csv)")

    @contextlib.contextmanager
    def _lock_workdir(self) -> Iterator[None]:
        note = claim_workdir(self.workdir)
        if note:
            self.say(note)
        with open(self.workdir / LOCK, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    f"another fusebench run is using {self.workdir}; wait for it or pass --workdir"
                ) from None
            yield


def _entry(run: PlannedRun) -> PlanEntry:
    return PlanEntry(run_id=run.run_id, cell=run.cell_key, target=run.target.name, repetition=run.repetition)


def _auto_state(auto: AutoRule | None) -> AutoState | None:
    return None if auto is None else AutoState(**auto.model_dump())


def _disk(counters: DiskCounters | None) -> DiskFigures:
    if counters is None:
        return DiskFigures()
    return DiskFigures(dev_reads=counters.reads, dev_read_bytes=counters.read_bytes, dev_writes=counters.writes,
                       dev_write_bytes=counters.write_bytes)


def _work(measured: Measured) -> WorkFigures:
    """The work columns of a measured run (an open/close loop's rate and latencies too)."""
    done, loop = measured.done, measured.done.loop
    latency = loop.open_us() if loop else [None, None, None]
    backing = measured.requests.backing() or {}

    def mean_us(ns: str, calls: str) -> float | None:
        return round(backing[ns] / backing[calls] / 1000, 2) if backing.get(calls) else None

    return WorkFigures(ops=done.ops, files=done.files, mib=round(done.mib, 3),
                       ops_per_s=round(loop.opens_per_s, 1) if loop else None,
                       op_p50_us=latency[0], op_p99_us=latency[1], op_p999_us=latency[2],
                       backing_opens=backing.get("backing_opens_total"),
                       backing_open_us=mean_us("backing_open_ns_total", "backing_opens_total"),
                       backing_close_us=mean_us("backing_close_ns_total", "backing_closes_total"))


def uncached_requests(cell: Cell, done: Done) -> tuple[str, ...]:
    """The data opcodes of what fio moved that no cache could absorb, so on a FUSE mount it went
    through the daemon unless passthrough engaged: reads with a cold cache or direct I/O, writes
    direct or fsynced (a writeback cache keeps buffered writes without fsync from the daemon)."""
    if cell.family != FIO or done.fio is None or done.mib == 0:
        return ()
    moved = {"READ": done.fio.read.io_bytes > 0 and (cell.cache == "cold" or cell.direct),
             "WRITE": done.fio.write.io_bytes > 0 and (cell.direct or cell.end_fsync or cell.fsync > 0)}
    return tuple(op for op, judged in moved.items() if judged)


def _settings(target: AnyTarget) -> TargetSettings:
    return TargetSettings(fd_policy=getattr(target, "fd_policy", None),
                          xattr=getattr(target, "xattr", None) if target.type in MODE_OF_TYPE else None)


def _summary(run: PlannedRun, record: RunRecord) -> str:
    """One progress line: what ran and its headline figures."""
    info, figures = record.info, record.fio
    head = f"{run.cell_key} on {run.target.name} r{run.repetition}: {info.status}"
    if info.status == STATUS_UNAVAILABLE:
        return head  # the reason was said once, before the first run
    if info.status == STATUS_FAILED:
        return f"{head}: {info.error}"
    work = record.work
    if work.ops_per_s is not None:
        parts = [f"{work.ops_per_s:.0f} opens/s, open p50 {work.op_p50_us:g} µs"]
    elif run.cell.family == "program":
        parts = [f"{info.duration_s:.2f} s, {work.files} files, {work.mib:.0f} MiB"]
    else:
        parts = [f"{prefix} {bw:.0f} MiB/s {iops:.0f} IOPS"
                 for prefix, bw, iops in (("read", figures.read_bw_mib_s, figures.read_iops),
                                          ("write", figures.write_bw_mib_s, figures.write_iops))
                 if bw is not None]
    engaged = record.requests.passthrough_engaged
    if engaged or (engaged is False and run.target.type == "passthrough"):  # an external server may not offer it
        parts.append(f"passthrough {'engaged' if engaged else 'NOT engaged'}")
    return f"{head}, {', '.join(parts)}"


def _one_line(exc: BaseException | str) -> str:
    """An error as one line: its first line (what failed) and its last three (why, the fix)."""
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    kept = lines if len(lines) <= 4 else [lines[0], "...", *lines[-3:]]
    return " | ".join(kept) if kept else type(exc).__name__
