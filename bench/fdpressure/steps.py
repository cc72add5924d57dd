"""The fd-pressure steps: a fresh mount of the target, the clients opening, holding and closing
N files, what stays released, the readings around it, and one fd_pressure.csv row (plus its
snapshots) per step."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.errors import BenchError, InputError
from bench.fdpressure.counts import (
    Counts,
    FdPressureError,
    Slabs,
    drop_caches_for_baseline,
    drop_dentries_and_inodes,
    file_nr_noise,
    nofile_soft_limit,
    system_limits,
    take_counts,
)
from bench.fdpressure.derive import (
    FILE_NR_TOLERANCE,
    baseline_differences,
    delta,
    progress_line,
    snapshot_record,
    step_figures,
)
from bench.fusefs.mounts import abort_connection
from bench.memcg import MemoryCgroup, memcg_unavailable_reason, memory_cgroup
from bench.records import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_UNAVAILABLE,
    FdPressureRecord,
    SnapshotRecord,
)
from bench.scenario import MAX_CLIENTS, AnyTarget, FdPressure, Scenario
from bench.smallfiles import create_files
from bench.stop import POLL_S, StopToken
from bench.system import file_nr
from bench.targets import MountedTarget, TargetUnavailable, open_target
from bench.workspace import owned_dir

FILES_DIR = "fusebench-fdp"
CLIENT_FD_RESERVE = 16  # fds the client interpreter itself needs besides its files

READY_TIMEOUT_S = 30.0
READY_TIMEOUT_PER_CLIENT_S = 0.5  # interpreters starting together share the CPUs
PHASE_TIMEOUT_S = 30.0
PHASE_TIMEOUT_PER_FILE_S = 0.005
RELEASE_TIMEOUT_S = 30.0
RELEASE_TIMEOUT_PER_FILE_S = 0.0002  # the daemon closes each idle id on its FORGET
SETTLE_TIMEOUT_S = 6.0
SETTLE_TIMEOUT_PER_FILE_S = 0.00002  # the slabs free a million inodes after their RCU grace periods
SETTLE_POLL_S = 0.1
QUIET_S = 0.3
DROP_AGAIN_S = 1.0
EXIT_TIMEOUT_S = 10.0
KILL_WAIT_S = 2.0

Write = Callable[[FdPressureRecord, list[SnapshotRecord], dict[str, Any] | None], None]


def client_count(count: int, nofile: int, clients: int | str) -> int:
    """How many clients open `count` files: `clients`, or with "auto" as many as an RLIMIT_NOFILE
    of `nofile` each needs; never more than one per file."""
    if clients == "auto":
        clients = -(-count // max(nofile - CLIENT_FD_RESERVE, 1))
    return max(1, min(int(clients), count))


def shares(count: int, clients: int) -> list[tuple[int, int]]:
    """(first file, files) of each client: `count` files in contiguous, near-equal ranges."""
    size, extra = divmod(count, clients)
    ranges, start = [], 0
    for index in range(clients):
        files = size + (index < extra)
        ranges.append((start, files))
        start += files
    return ranges


class _Clients:
    """The client processes (bench.fdpressure.client) of a step, each opening its own range of
    files, driven together over their stdin/stdout with timeouts."""

    def __init__(self, directory: Path, ranges: list[tuple[int, int]], nofile: int, stop: StopToken) -> None:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._stop = stop
        self._lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.processes: list[subprocess.Popen] = []
        try:
            for first, files in ranges:
                self._start(directory, first, files, nofile, env)
        except OSError as exc:
            self.end(None)  # the ones already started would wait on their stdin forever
            raise FdPressureError(f"cannot start client {len(self.processes) + 1} of {len(ranges)}: {exc}") from None

    def _start(self, directory: Path, first: int, files: int, nofile: int, env: dict[str, str]) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.fdpressure.client", str(directory), str(first), str(files), str(nofile)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C on the terminal is for the runner: the step finishes
        )
        self.processes.append(process)
        threading.Thread(target=self._pump, args=(len(self.processes) - 1, process), daemon=True).start()

    @property
    def pids(self) -> list[int]:
        """The clients' pids."""
        return [process.pid for process in self.processes]

    def _pump(self, index: int, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self._lines.put((index, line))
        self._lines.put((index, None))

    def receive(self, timeout: float, waiting_for: str) -> list[dict]:
        """Every client's next message, in client order (Interrupted when the run is abandoned
        meanwhile); FdPressureError as soon as one client exits or the time is up."""
        deadline = time.monotonic() + timeout
        messages: dict[int, dict] = {}
        while len(messages) < len(self.processes):
            try:
                index, line = self._lines.get(timeout=min(POLL_S, max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                self._stop.check()
                if time.monotonic() >= deadline:
                    raise FdPressureError(
                        f"{len(self.processes) - len(messages)} of {len(self.processes)} clients did not finish "
                        f"{waiting_for} within {timeout:.0f} s (daemon hung?)") from None
                continue
            if line is None and index in messages:
                continue  # it answered, then exited (after the close)
            if line is None:
                process = self.processes[index]
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(EXIT_TIMEOUT_S)
                stderr = process.stderr.read().strip().splitlines()
                reason = stderr[-1] if stderr else f"exit status {process.returncode}"
                raise FdPressureError(f"client {index + 1} of {len(self.processes)} (pid {process.pid}) exited "
                                      f"while {waiting_for}: {reason}")
            try:
                messages[index] = json.loads(line)
            except ValueError:
                raise FdPressureError(f"client {index + 1} answered {line.strip()[:80]!r} while {waiting_for}") from None
        return [messages[index] for index in range(len(self.processes))]

    def send(self, command: str) -> None:
        """Tell every client to go on with `command` (open or close)."""
        for index, process in enumerate(self.processes):
            try:
                process.stdin.write(command + "\n")
                process.stdin.flush()
            except BrokenPipeError:
                raise FdPressureError(f"client {index + 1} of {len(self.processes)} (pid {process.pid}) exited "
                                      f"before it was told to {command}") from None

    def wait(self) -> None:
        """Wait for every client to exit; FdPressureError when one fails."""
        for index, process in enumerate(self.processes):
            try:
                status = process.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise FdPressureError(f"client {index + 1} did not exit within {EXIT_TIMEOUT_S:.0f} s of closing "
                                      "its files") from None
            if status != 0:
                raise FdPressureError(f"client {index + 1} exited with status {status}")

    def end(self, connection: int | None) -> None:
        """End the clients that still run and wait for them; abort the mount if one hangs there.

        A client blocked on a request its daemon will never answer (hung or stopped daemon)
        survives SIGKILL until the FUSE connection is aborted.
        """
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        deadline = time.monotonic() + KILL_WAIT_S
        hanging = []
        for process in self.processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                hanging.append(process)
        if hanging:
            try:
                aborted = connection is not None and abort_connection(connection)
            except OSError as exc:
                raise FdPressureError(f"client pid {hanging[0].pid} hangs after SIGKILL: {exc}") from None
            if not aborted:
                raise FdPressureError(f"client pid {hanging[0].pid} hangs after SIGKILL") from None
            for process in hanging:
                process.wait(EXIT_TIMEOUT_S)
        for process in self.processes:
            for stream in (process.stdin, process.stdout, process.stderr):
                try:
                    stream.close()
                except OSError:
                    pass  # a broken pipe to a killed client


def merged_report(reports: list[dict], closes: list[dict]) -> dict[str, Any]:
    """The clients' reports as one: each client's own (its opens' latencies, its wall and close
    times) kept under `clients`, with the totals of the step: counts summed, the first error, the
    slowest client's wall and close times (the clients run at the same time)."""
    return {
        "opened": sum(report["opened"] for report in reports),
        "failed": sum(report["failed"] for report in reports),
        "errno": next((report["errno"] for report in reports if report["errno"]), None),
        "wall_s": max(report["wall_s"] for report in reports),
        "close_s": max(close["close_s"] for close in closes),
        "clients": [dict(report, **close) for report, close in zip(reports, closes)],
    }


def _settle(mounted: MountedTarget | None, baseline: Counts, noise: int, slabs: Slabs, stop: StopToken,
            timeout: float) -> tuple[list[str], Counts]:
    """Drop dentries/inodes and wait until the counts are back (`mounted` None: the mount is
    gone, system-wide counts only); the differences that remain and the last reading."""
    dropped = drop_dentries_and_inodes()
    deadline = time.monotonic() + timeout
    next_drop = time.monotonic() + DROP_AGAIN_S
    while True:
        now = take_counts(mounted, slabs=slabs, listing=False)
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


def _backing_ids(mounted: MountedTarget) -> tuple[int, int] | None:
    """(live backing ids, ids closed so far) from figures the daemon wrote after now; None without stats."""
    stats = mounted.read_stats(newer_than=time.time())
    return (stats.get("backing_ids", 0), stats.get("backing_closes_total", 0)) if stats else None


def _wait_quiet(mounted: MountedTarget, noise: int, stop: StopToken, timeout: float) -> bool:
    """Wait until the daemon's backing ids and file-nr stop changing: the kernel sends RELEASEs
    after the clients' closes, the daemon answers them one by one, and the files of exited
    clients are freed by a kernel worker a moment later. False when they still moved at `timeout`."""
    deadline = time.monotonic() + timeout
    last = (_backing_ids(mounted), file_nr())
    while time.monotonic() < deadline:
        stop.sleep(QUIET_S)
        now = (_backing_ids(mounted), file_nr())
        if now[0] == last[0] and abs(now[1] - last[1]) <= FILE_NR_TOLERANCE + noise:
            return True
        last = now
    return False


def _release(mounted: MountedTarget, release: str, baseline_ids: int | None, memcg: MemoryCgroup | None,
             stop: StopToken, timeout: float) -> float | None:
    """Release what stays after the close by `release` (not unmount) and wait until the backing
    ids are back at `baseline_ids`: the seconds it took, None when they were not within `timeout`
    (or could not be dropped: not root)."""
    started = time.monotonic()
    if release == "memory_pressure":
        memcg.reclaim()
    elif not drop_dentries_and_inodes():
        return None
    next_drop = time.monotonic() + DROP_AGAIN_S
    while True:
        ids = _backing_ids(mounted)
        if ids is None or baseline_ids is None or ids[0] <= baseline_ids:
            return round(time.monotonic() - started, 3)
        if time.monotonic() - started > timeout:
            return None
        stop.sleep(SETTLE_POLL_S)
        if release == "drop_caches" and time.monotonic() >= next_drop:
            drop_dentries_and_inodes()  # inodes still referenced at the first drop survive it
            next_drop = time.monotonic() + DROP_AGAIN_S


def measure_step(mounted: MountedTarget, count: int, client_nofile: int, *, clients: int = 1,
                 release: str = "drop_caches", unmount: Callable[[], None] | None = None,
                 premount: Counts | None = None, memcg: MemoryCgroup | None = None, slabs: Slabs = Slabs(None),
                 timeout_s: float | None = None,
                 stop: StopToken | None = None) -> tuple[dict[str, Any], dict[str, Counts], dict[str, Any]]:
    """Open `count` fd-pressure files through `mounted` from `clients` processes, hold, close,
    release what stays: the measured columns, the readings by phase and the clients' report
    (every open's latency in ns, the wall times).

    The files must exist (create_files) under the mount's FILES_DIR; the caller owns the
    mount and gives a fresh one (the baseline is taken as found). `release` is how what stays
    after the close goes: `drop_caches`, `memory_pressure` (needs `memcg`: the clients run in
    it and it is reclaimed) or `unmount` (needs `unmount`, which unmounts `mounted`, and the
    `premount` reading to compare with). `timeout_s` bounds the open and the close phase each
    (default: 30 s plus 5 ms per file); past it the step fails with FdPressureError, the
    clients are killed and, if one hangs, the mount aborted.
    """
    if release == "unmount" and (unmount is None or premount is None):
        raise ValueError("release by unmount needs `unmount` and the `premount` reading")
    if release == "memory_pressure" and memcg is None:
        raise ValueError("release by memory pressure needs the clients' `memcg`")
    stop = stop or StopToken()
    phase_timeout = timeout_s if timeout_s is not None else PHASE_TIMEOUT_S + PHASE_TIMEOUT_PER_FILE_S * count
    release_timeout = RELEASE_TIMEOUT_S + RELEASE_TIMEOUT_PER_FILE_S * count
    settle_timeout = SETTLE_TIMEOUT_S + SETTLE_TIMEOUT_PER_FILE_S * count
    readings = {"premount": premount} if premount else {}
    readings["baseline"] = take_counts(mounted, slabs=slabs)
    with ExitStack() as stack:
        group = _Clients(mounted.path / FILES_DIR, shares(count, clients), client_nofile, stop)
        stack.callback(group.end, mounted.connection)
        group.receive(READY_TIMEOUT_S + READY_TIMEOUT_PER_CLIENT_S * clients, "starting")
        for pid in group.pids if memcg else ():
            memcg.add(pid)
        noise = file_nr_noise()
        readings["before"] = take_counts(mounted, group.pids, slabs)
        group.send("open")
        opened = group.receive(phase_timeout, f"opening {count} files")
        readings["held"] = take_counts(mounted, group.pids, slabs)
        group.send("close")
        closed = group.receive(phase_timeout, "closing its files")
        group.wait()
    quiet = _wait_quiet(mounted, noise, stop, release_timeout)
    readings["idle"] = take_counts(mounted, slabs=slabs)
    report = merged_report(opened, closed)
    daemon_counted = mounted.daemon_pid is not None or mounted.mountpoint is None
    notes = [] if daemon_counted else ["the daemon's pid is unknown: its fds are not counted, hidden_files not derived"]
    if not quiet:
        notes.append(f"backing ids or file-nr still moved {release_timeout:.0f} s after the close: idle figures "
                     "taken anyway")
    # Timed only when something stayed: releasing nothing measures nothing.
    idle_ids = delta(readings["idle"].backing_ids, readings["baseline"].backing_ids)
    something_idle = idle_ids is not None and idle_ids > 0
    started = time.monotonic()
    if release == "unmount":
        unmount()
        release_s = round(time.monotonic() - started, 3) if something_idle else None
        readings["released"] = take_counts(None, slabs=slabs)
        # The unmount evicts every FUSE inode, but the slab frees them only after an RCU grace period.
        differences, readings["after"] = _settle(None, premount, noise, slabs, stop, settle_timeout)
    else:
        release_s = _release(mounted, release, readings["baseline"].backing_ids, memcg, stop, release_timeout)
        readings["released"] = take_counts(mounted, slabs=slabs)
        if release_s is None and something_idle:
            notes.append(f"{release} did not release the idle backing ids ({readings['released'].backing_ids} "
                         "left)")
        release_s = release_s if something_idle else None
        differences, readings["after"] = _settle(mounted, readings["baseline"], noise, slabs, stop, settle_timeout)
    figures = step_figures(count, readings, report, report["close_s"], noise, daemon_counted)
    file_max, nr_open = system_limits()
    figures.update(release=release, clients=clients, release_s=release_s, file_max=file_max, nr_open=nr_open,
                   returned_to_baseline=not differences, baseline_detail="; ".join(differences + notes) or None)
    return figures, readings, report


def _client_nofile(plan: FdPressure, progress: Callable[[str], None]) -> int:
    """Each client's RLIMIT_NOFILE: as asked, else the hard limit; never above the hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = plan.client_nofile or hard
    if nofile > hard:
        raise InputError(
            f"fd_pressure.client_nofile {nofile} exceeds this process's hard RLIMIT_NOFILE {hard}; "
            f"lower it (or leave it out to use {hard})"
        )
    largest = max(count for _, count, _ in plan.steps())
    clients = client_count(largest, nofile, plan.clients)
    if clients > MAX_CLIENTS:
        raise InputError(f"fd_pressure: {largest} files at an RLIMIT_NOFILE of {nofile} need {clients} clients, more "
                         f"than {MAX_CLIENTS}; raise fd_pressure.client_nofile (or the hard limit: ulimit -Hn) or "
                         "lower open_files")
    if -(-largest // clients) + CLIENT_FD_RESERVE > nofile:
        progress(
            f"fd pressure: warning: {clients} clients may hold only {nofile} files each, so opens beyond about "
            f"{clients * (nofile - CLIENT_FD_RESERVE)} of {largest} fail in the clients themselves, not in the "
            "daemon (leave fd_pressure.clients at auto)"
        )
    return nofile


def _step(target: AnyTarget, count: int, release: str, plan: FdPressure, source: Path, workdir: Path,
          client_nofile: int, slabs: Slabs,
          stop: StopToken) -> tuple[FdPressureRecord, list[SnapshotRecord], dict[str, Any] | None]:
    """One step: mount `target` afresh, measure `count` opens, release by `release`, unmount."""
    clients = client_count(count, client_nofile, plan.clients)
    record = FdPressureRecord(target=target.name, target_type=target.type,
                              fd_policy=getattr(target, "fd_policy", None), release=release, clients=clients,
                              open_files=count, status=STATUS_OK)
    try:
        with ExitStack() as stack:
            if release == "memory_pressure":
                reason = memcg_unavailable_reason()
                if reason:
                    raise TargetUnavailable(f"release by memory pressure needs a memory cgroup: {reason}")
                memcg = stack.enter_context(memory_cgroup(f"fd pressure {target.name}"))
            else:
                memcg = None
            drop_caches_for_baseline()  # the backing files' inodes too: what an open pins is then counted
            premount = take_counts(None, slabs=slabs)
            with ExitStack() as mount:
                mounted = mount.enter_context(open_target(target, source, workdir, nofile=plan.daemon_nofile))
                notes = []
                applied = nofile_soft_limit(mounted.daemon_pid) if mounted.daemon_pid else None
                if mounted.daemon_pid and applied != plan.daemon_nofile:
                    notes.append(f"the daemon runs with RLIMIT_NOFILE {applied}, not the requested "
                                 f"{plan.daemon_nofile} (the target could not apply it)")
                figures, readings, client = measure_step(mounted, count, client_nofile, clients=clients,
                                                         release=release, unmount=mount.close, premount=premount,
                                                         memcg=memcg, slabs=slabs, stop=stop)
            detail = "; ".join(filter(None, [*notes, figures.pop("baseline_detail")])) or None
            record = record.changed(**figures, daemon_nofile=applied, backing_inode_slab=slabs.backing_inode,
                                    baseline_detail=detail)
            return record, [snapshot_record(record, phase, counts) for phase, counts in readings.items()], client
    except TargetUnavailable as exc:
        return record.changed(status=STATUS_UNAVAILABLE, error=str(exc)), [], None
    except BenchError as exc:
        return record.changed(status=STATUS_FAILED, error=str(exc)), [], None
    except OSError as exc:
        error = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        return record.changed(status=STATUS_FAILED, error=error), [], None


def run_fd_pressure(scenario: Scenario, source: Path, workdir: Path, write: Write,
                    progress: Callable[[str], None] = print, stop: StopToken | None = None) -> list[FdPressureRecord]:
    """Run every fd-pressure step of `scenario` (targets x open_files x release, a fresh mount each).

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
    with _own_fds_raised():
        return _run_steps(scenario, plan, source, workdir, client_nofile, write, progress, stop)


@contextlib.contextmanager
def _own_fds_raised() -> Iterator[None]:
    """This process's soft RLIMIT_NOFILE at its hard limit meanwhile: each client costs it three
    pipe ends (a thousand clients would not fit in the usual 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _run_steps(scenario: Scenario, plan: FdPressure, source: Path, workdir: Path, client_nofile: int, write: Write,
               progress: Callable[[str], None], stop: StopToken) -> list[FdPressureRecord]:
    largest = max(count for _, count, _ in plan.steps())
    progress(f"fd pressure: preparing {largest} files in {source / FILES_DIR}")
    # Empty files: a read through the mount still proves the open file works, and they take
    # half the time to make (a million in well under a minute).
    files = create_files(owned_dir(source, FILES_DIR), largest, progress=lambda line: progress(f"fd pressure: {line}"),
                         empty=True)
    slabs = Slabs.for_source(files)
    records = []
    for name, count, release in plan.steps():
        if stop.requested:
            return records
        clients = client_count(count, client_nofile, plan.clients)
        progress(f"fd pressure: {name}: opening {count} files from {clients} client{'s' if clients > 1 else ''}, "
                 f"release by {release} (daemon RLIMIT_NOFILE {plan.daemon_nofile})")
        record, snapshots, client = _step(scenario.target(name), count, release, plan, source, workdir,
                                          client_nofile, slabs, stop)
        write(record, snapshots, client)
        records.append(record)
        progress(progress_line(record))
    return records
