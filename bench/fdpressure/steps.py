"""The fd-pressure steps: a fresh mount of the target, the client opening, holding and closing
N files, the readings around it, and one fd_pressure.csv row (plus its snapshots) per step."""

from __future__ import annotations

import json
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.errors import BenchError, InputError
from bench.fdpressure.counts import (
    Counts,
    FdPressureError,
    drop_dentries_and_inodes,
    file_nr_noise,
    nofile_soft_limit,
    take_counts,
)
from bench.fdpressure.derive import (
    baseline_differences,
    progress_line,
    snapshot_record,
    step_figures,
)
from bench.fusefs.mounts import abort_connection
from bench.records import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_UNAVAILABLE,
    FdPressureRecord,
    SnapshotRecord,
)
from bench.scenario import AnyTarget, FdPressure, Scenario
from bench.smallfiles import create_files
from bench.stop import POLL_S, StopToken
from bench.targets import MountedTarget, TargetUnavailable, open_target
from bench.workspace import owned_dir

FILES_DIR = "fusebench-fdp"
CLIENT_FD_RESERVE = 16  # fds the client interpreter itself needs besides the N files

READY_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 30.0
PHASE_TIMEOUT_PER_FILE_S = 0.005
SETTLE_TIMEOUT_S = 6.0
SETTLE_POLL_S = 0.1
DROP_AGAIN_S = 1.0
EXIT_TIMEOUT_S = 10.0
KILL_WAIT_S = 2.0

Write = Callable[[FdPressureRecord, list[SnapshotRecord], dict[str, Any] | None], None]


class _Client:
    """The client process (bench.fdpressure.client), driven over its stdin/stdout with timeouts."""

    def __init__(self, directory: Path, count: int, nofile: int, stop: StopToken) -> None:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fdpressure.client", str(directory), str(count), str(nofile)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C on the terminal is for the runner: the step finishes
        )
        self._stop = stop
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def pid(self) -> int:
        """The client's pid."""
        return self.process.pid

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def receive(self, timeout: float, waiting_for: str) -> dict:
        """The client's next message (Interrupted when the run is abandoned meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=min(POLL_S, max(deadline - time.monotonic(), 0)))
                break
            except queue.Empty:
                self._stop.check()
                if time.monotonic() >= deadline:
                    raise FdPressureError(
                        f"the client did not finish {waiting_for} within {timeout:.0f} s (daemon hung?)") from None
        if line is None:
            self.process.wait(EXIT_TIMEOUT_S)
            stderr = self.process.stderr.read().strip().splitlines()
            reason = stderr[-1] if stderr else f"exit status {self.process.returncode}"
            raise FdPressureError(f"the client exited while {waiting_for}: {reason}")
        return json.loads(line)

    def send(self, command: str) -> None:
        """Tell the client to go on with `command` (open or close)."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def end(self, connection: int | None) -> None:
        """End the client if it still runs and wait for it; abort the mount if it hangs there.

        A client blocked on a request its daemon will never answer (hung or stopped daemon)
        survives SIGKILL until the FUSE connection is aborted.
        """
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            try:
                aborted = connection is not None and abort_connection(connection)
            except OSError as exc:
                raise FdPressureError(f"the client (pid {self.pid}) hangs after SIGKILL: {exc}") from None
            if not aborted:
                raise FdPressureError(f"the client (pid {self.pid}) hangs after SIGKILL") from None
            self.process.wait(EXIT_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass  # a broken pipe to a killed client


def _settle(mounted: MountedTarget, baseline: Counts, noise: int, stop: StopToken) -> tuple[list[str], Counts]:
    """Drop dentries/inodes and wait until the counts are back; the differences that remain
    and the last reading."""
    dropped = drop_dentries_and_inodes()
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    next_drop = time.monotonic() + DROP_AGAIN_S
    while True:
        now = take_counts(mounted)
        differences = baseline_differences(baseline, now, noise)
        if not differences or time.monotonic() > deadline:
            break
        stop.sleep(SETTLE_POLL_S)
        # FORGETs reach the daemon asynchronously, and inodes still in use at the first drop survive it.
        if dropped and time.monotonic() >= next_drop:
            drop_dentries_and_inodes()
            next_drop = time.monotonic() + DROP_AGAIN_S
    if differences and not dropped:
        differences.append("dentries and inodes not dropped (needs root)")
    return differences, now


def measure_step(mounted: MountedTarget, count: int, client_nofile: int, *, timeout_s: float | None = None,
                 stop: StopToken | None = None) -> tuple[dict[str, Any], dict[str, Counts], dict[str, Any]]:
    """Open `count` fd-pressure files through `mounted`, hold, close: the measured columns, the
    readings by phase (baseline, before, held, after) and the client's own report (every open's
    latency in ns, the wall times).

    The files must exist (create_files) under the mount's FILES_DIR; the caller owns the
    mount and gives a fresh one (the baseline is taken as found). `timeout_s` bounds the
    open and the close phase each (default: 30 s plus 5 ms per file); past it the step
    fails with FdPressureError, the client is killed and, if it hangs, the mount aborted.
    """
    stop = stop or StopToken()
    phase_timeout = timeout_s if timeout_s is not None else PHASE_TIMEOUT_S + PHASE_TIMEOUT_PER_FILE_S * count
    readings = {"baseline": take_counts(mounted)}
    with ExitStack() as stack:
        client = _Client(mounted.path / FILES_DIR, count, client_nofile, stop)
        stack.callback(client.end, mounted.connection)
        client.receive(READY_TIMEOUT_S, "starting")
        noise = file_nr_noise()
        readings["before"] = take_counts(mounted, client.pid)
        client.send("open")
        opened = client.receive(phase_timeout, f"opening {count} files")
        readings["held"] = take_counts(mounted, client.pid)
        client.send("close")
        closed = client.receive(phase_timeout, "closing its files")
        if client.process.wait(EXIT_TIMEOUT_S) != 0:
            raise FdPressureError(f"the client exited with status {client.process.returncode}")
    differences, readings["after"] = _settle(mounted, readings["baseline"], noise, stop)
    daemon_counted = mounted.daemon_pid is not None or mounted.mountpoint is None
    notes = [] if daemon_counted else ["the daemon's pid is unknown: its fds are not counted, hidden_files not derived"]
    figures = step_figures(count, readings["before"], readings["held"], opened, closed["close_s"], noise,
                           daemon_counted)
    figures.update(returned_to_baseline=not differences, baseline_detail="; ".join(differences + notes) or None)
    return figures, readings, dict(opened, **closed)


def _client_nofile(plan: FdPressure, progress: Callable[[str], None]) -> int:
    """The client's RLIMIT_NOFILE: as asked, else the hard limit; never above the hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = plan.client_nofile or hard
    if nofile > hard:
        raise InputError(
            f"fd_pressure.client_nofile {nofile} exceeds this process's hard RLIMIT_NOFILE {hard}; "
            f"lower it (or leave it out to use {hard})"
        )
    largest = max(plan.open_files)
    if largest + CLIENT_FD_RESERVE > nofile:
        progress(
            f"fd pressure: warning: the client may hold only {nofile} files, so opens beyond about "
            f"{nofile - CLIENT_FD_RESERVE} of {largest} fail in the client itself, not in the daemon"
        )
    return nofile


def _step(target: AnyTarget, count: int, plan: FdPressure, source: Path, workdir: Path, client_nofile: int,
          stop: StopToken) -> tuple[FdPressureRecord, list[SnapshotRecord], dict[str, Any] | None]:
    """One step: mount `target` afresh, measure `count` opens, unmount."""
    record = FdPressureRecord(target=target.name, target_type=target.type,
                              fd_policy=getattr(target, "fd_policy", None), open_files=count, status=STATUS_OK)
    try:
        with open_target(target, source, workdir, nofile=plan.daemon_nofile) as mounted:
            notes = []
            applied = nofile_soft_limit(mounted.daemon_pid) if mounted.daemon_pid else None
            if mounted.daemon_pid and applied != plan.daemon_nofile:
                notes.append(f"the daemon runs with RLIMIT_NOFILE {applied}, not the requested "
                             f"{plan.daemon_nofile} (the target could not apply it)")
            figures, readings, client = measure_step(mounted, count, client_nofile, stop=stop)
            detail = "; ".join(filter(None, [*notes, figures.pop("baseline_detail")])) or None
            record = record.changed(**figures, daemon_nofile=applied, baseline_detail=detail)
            return record, [snapshot_record(record, phase, counts) for phase, counts in readings.items()], client
    except TargetUnavailable as exc:
        return record.changed(status=STATUS_UNAVAILABLE, error=str(exc)), [], None
    except BenchError as exc:
        return record.changed(status=STATUS_FAILED, error=str(exc)), [], None


def run_fd_pressure(scenario: Scenario, source: Path, workdir: Path, write: Write,
                    progress: Callable[[str], None] = print, stop: StopToken | None = None) -> list[FdPressureRecord]:
    """Run every fd-pressure step of `scenario` (targets x open_files, a fresh mount each).

    Each step goes to `write` as soon as it is measured; all are returned. A target that
    cannot run or a step that fails gives a record with status unavailable or failed and the
    run goes on. A first stop signal ends the run after the current step; a second abandons
    it (Interrupted). The files are created in source/fusebench-fdp once and reused.
    """
    plan = scenario.fd_pressure
    if plan is None:
        return []
    stop = stop or StopToken()
    source, workdir = source.resolve(), workdir.resolve()
    client_nofile = _client_nofile(plan, progress)
    progress(f"fd pressure: preparing {max(plan.open_files)} files in {source / FILES_DIR}")
    create_files(owned_dir(source, FILES_DIR), max(plan.open_files))
    records = []
    for name in plan.targets:
        target = scenario.target(name)
        for count in plan.open_files:
            if stop.requested:
                return records
            progress(f"fd pressure: {name}: opening {count} files (daemon RLIMIT_NOFILE {plan.daemon_nofile})")
            record, snapshots, client = _step(target, count, plan, source, workdir, client_nofile, stop)
            write(record, snapshots, client)
            records.append(record)
            progress(progress_line(record))
    return records
