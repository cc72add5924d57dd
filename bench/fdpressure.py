"""fd-limit pressure: open N files through a target and account for every file they cost.

For each target of `scenario.fd_pressure` and each N of `open_files`, one *step*:
mount the target afresh (its daemon under RLIMIT_NOFILE `daemon_nofile`), count what is
allocated, let a client process open N small files through the mount and hold them, count
again, let the client close them, drop dentries and inodes (so FORGETs release what the
daemon keeps per inode) and check that every count returns to its baseline.

A fresh mount per step keeps steps independent: a daemon that hit its fd limit in one
step (or leaked) cannot distort the next, and every baseline is a clean mount.

Counts, and what they reveal (reference/fuse-protocol.md, "Backing files"):
- daemon fds (/proc/PID/fd) and client fds: files visible in some process's fd table;
- /proc/sys/fs/file-nr: all allocated struct files, visible or not; a passthrough daemon
  that closes its fd after registering leaves the backing file allocated but in no table,
  so hidden_files = file_nr_delta - daemon_fds_delta - client_fds_delta;
- the `bfilp` slab: the kernel's per-open struct backing_file, in no table and not in
  file-nr; kernel_bytes_per_file is its growth in bytes per opened file;
- backing_ids: growth of the built-in server's live backing ids (its stats file).
file-nr and the slab are system-wide. file-nr is a per-CPU approximation (off by up to
FILE_NR_TOLERANCE per difference) and moves with other processes' files: file_nr_noise is
how far it moved by itself just before the opens. The slab is shrunk before each reading,
which makes its count exact. opens_per_s is attempts per second over the whole open phase
(open plus a 1-byte read each, failures included); open_p50/p99_us cover successful opens.

The client is this module run as `python -m bench.fdpressure client DIR N NOFILE`; it only
opens known paths, never lists the mount or scans fd tables.
"""

from __future__ import annotations

import errno
import json
import math
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import bench
from bench.fusefs.mounts import abort_connection
from bench.columns import FD_PRESSURE_COLUMNS
from bench.errors import BenchError, InputError
from bench.results import STATUS_FAILED, STATUS_OK, STATUS_UNAVAILABLE
from bench.scenario import FdPressure, Scenario, Target
from bench.system import BACKING_FILE_SLAB, drop_caches, file_nr, slab_active_objects
from bench.targets import MountedTarget, TargetUnavailable, open_target

FILES_DIR = "fusebench-fdp"
FILE_CONTENT = b"fusebench fd-pressure file\n"
SLAB_SHRINK = Path(f"/sys/kernel/slab/{BACKING_FILE_SLAB}/shrink")
CLIENT_FD_RESERVE = 16  # fds the client interpreter itself needs besides the N files

READY_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 30.0
PHASE_TIMEOUT_PER_FILE_S = 0.005
SETTLE_TIMEOUT_S = 6.0
SETTLE_POLL_S = 0.1
DROP_AGAIN_S = 1.0
EXIT_TIMEOUT_S = 10.0
KILL_WAIT_S = 2.0

NOISE_WINDOW_S = 0.3
NOISE_POLL_S = 0.01


def _file_nr_error() -> int:
    # The kernel counts files per CPU and folds each CPU's count into the total in batches
    # of max(32, 2 x CPUs): each reading may be off by up to a batch per CPU.
    cpus = os.cpu_count() or 1
    return 2 * max(32, 2 * cpus) * cpus


# How far a count may be off its baseline and still count as returned: the built-in
# daemon briefly holds its stats file open; file-nr is a per-CPU approximation (plus what
# other processes do meanwhile, measured per step); the slab count is exact after a shrink
# but system-wide.
DAEMON_FDS_TOLERANCE = 2
FILE_NR_TOLERANCE = _file_nr_error()
SLAB_TOLERANCE = 16


class FdPressureError(BenchError):
    """A step that could not be measured (client or daemon died or hung)."""


@dataclass(frozen=True)
class Counts:
    """One reading of everything an open file can cost; None where not measurable."""

    file_nr: int
    daemon_fds: int | None
    daemon_rss_kib: int | None
    client_fds: int | None
    bfilp_active: int | None
    bfilp_objsize: int | None
    backing_ids: int | None


# ---------------------------------------------------------------- files


def file_name(index: int) -> str:
    """Name of the index-th fd-pressure file."""
    return f"f{index:06d}"


def prepare_files(source: Path, count: int) -> Path:
    """Create `count` small files in source/fusebench-fdp (once; existing ones are reused)."""
    directory = source / FILES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        try:
            fd = os.open(directory / file_name(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        try:
            os.write(fd, FILE_CONTENT)
        finally:
            os.close(fd)
    return directory


# ---------------------------------------------------------------- measuring


def _fd_count(pid: int, role: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        raise FdPressureError(f"the {role} (pid {pid}) exited during the measurement") from None


def _rss_kib(pid: int, role: str) -> int:
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except psutil.NoSuchProcess:
        raise FdPressureError(f"the {role} (pid {pid}) exited during the measurement") from None


def nofile_soft_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of a process (from /proc/PID/limits); None if unlimited or unreadable."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return int(soft) if soft.isdigit() else None
    return None


def backing_file_objects() -> tuple[int, int] | None:
    """Exact active objects (and object size) of the bfilp slab; None when unreadable.

    /proc/slabinfo counts objects cached per CPU (cpu slabs, sheaves) as active, which is
    off by up to a hundred here; shrinking the cache first returns them, making it exact.
    """
    try:
        SLAB_SHRINK.write_text("1\n")
    except OSError:
        pass  # not root, or no SLUB sysfs: the approximate figure still helps
    return slab_active_objects(BACKING_FILE_SLAB)


def take_counts(mounted: MountedTarget, client_pid: int | None = None) -> Counts:
    """Read every count once (the daemon's, the client's when given, and system-wide ones)."""
    pid = mounted.daemon_pid
    asked = time.time()
    # file-nr and the fd tables first and together: other processes move file-nr meanwhile.
    files = file_nr()
    daemon_fds = _fd_count(pid, "daemon") if pid else None
    client_fds = _fd_count(client_pid, "client") if client_pid else None
    slab = backing_file_objects()
    # The stats file is rewritten a few times a second: wait for figures from after `asked`.
    stats = mounted.read_stats(newer_than=asked)
    return Counts(
        file_nr=files,
        daemon_fds=daemon_fds,
        daemon_rss_kib=_rss_kib(pid, "daemon") if pid else None,
        client_fds=client_fds,
        bfilp_active=slab[0] if slab else None,
        bfilp_objsize=slab[1] if slab else None,
        backing_ids=stats.get("backing_ids") if stats else None,
    )


def file_nr_noise(window_s: float = NOISE_WINDOW_S) -> int:
    """How far file-nr moves by itself (other processes) over `window_s`: max - min of readings."""
    readings = [file_nr()]
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        time.sleep(NOISE_POLL_S)
        readings.append(file_nr())
    return max(readings) - min(readings)


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def baseline_differences(baseline: Counts, now: Counts, file_nr_noise: int = 0) -> list[str]:
    """What has not returned to its baseline (within tolerance); empty when everything has.

    The daemon's fds and backing ids are ours alone: any change counts. file-nr and the
    slab are system-wide: only an excess can be ours (a leak); a drop is other processes
    closing files.
    """
    checks = (
        ("daemon fds", baseline.daemon_fds, now.daemon_fds, DAEMON_FDS_TOLERANCE, True),
        ("file-nr", baseline.file_nr, now.file_nr, FILE_NR_TOLERANCE + file_nr_noise, False),
        (BACKING_FILE_SLAB, baseline.bfilp_active, now.bfilp_active, SLAB_TOLERANCE, False),
        ("backing ids", baseline.backing_ids, now.backing_ids, 0, True),
    )
    return [
        f"{name} {before} -> {after}"
        for name, before, after, tolerance, both_ways in checks
        if before is not None
        and after is not None
        and (abs(after - before) if both_ways else after - before) > tolerance
    ]


def drop_dentries_and_inodes() -> bool:
    """Evict unused dentries and inodes (FUSE FORGETs follow); False when not permitted."""
    try:
        drop_caches(level=2)
    except PermissionError:
        return False
    return True


def _settle(mounted: MountedTarget, baseline: Counts, file_nr_noise: int) -> list[str]:
    """Drop dentries/inodes and wait until the counts are back; the differences that remain."""
    dropped = drop_dentries_and_inodes()
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    next_drop = time.monotonic() + DROP_AGAIN_S
    while True:
        differences = baseline_differences(baseline, take_counts(mounted), file_nr_noise)
        if not differences or time.monotonic() > deadline:
            break
        time.sleep(SETTLE_POLL_S)
        # FORGETs reach the daemon asynchronously, and inodes still in use at the first drop survive it.
        if dropped and time.monotonic() >= next_drop:
            drop_dentries_and_inodes()
            next_drop = time.monotonic() + DROP_AGAIN_S
    if differences and not dropped:
        differences.append("dentries and inodes not dropped (needs root)")
    return differences


def percentile(values: list[int], pct: float) -> int | None:
    """Nearest-rank percentile of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------- the client process


class _Client:
    """The client process, driven over its stdin/stdout, read with timeouts.

    Protocol (one JSON line per message): client {"ready"}; parent "open"; client
    {"opened", "failed", "errno", "open_ns", "wall_s"} while holding the files; parent
    "close"; client {"close_s"} and exits 0.
    """

    def __init__(self, directory: Path, count: int, nofile: int):
        env = dict(os.environ)
        package_root = str(Path(bench.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fdpressure", "client", str(directory), str(count), str(nofile)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def receive(self, timeout: float, waiting_for: str) -> dict:
        """The client's next message."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise FdPressureError(f"the client did not finish {waiting_for} within {timeout:.0f} s (daemon hung?)") from None
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

    def stop(self, connection: int | None) -> None:
        """End the client if it still runs and wait for it; abort the mount if it hangs there.

        A client blocked on a request its daemon will never answer (hung or stopped daemon)
        survives SIGKILL until the FUSE connection is aborted.
        """
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            if connection is None or not abort_connection(connection):
                raise FdPressureError(f"the client (pid {self.pid}) hangs after SIGKILL") from None
            self.process.wait(EXIT_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass  # a broken pipe to a killed client


def _client_main(directory: Path, count: int, nofile: int) -> int:
    """The client: open `count` files one by one, hold them, close them (protocol in _Client)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    out = sys.stdout

    def say(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    say({"ready": True})
    if sys.stdin.readline().strip() != "open":
        return 2
    fds: list[int] = []
    open_ns: list[int] = []
    first_error = None
    started = time.perf_counter()
    for index in range(count):
        path = directory / file_name(index)
        t0 = time.perf_counter_ns()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            first_error = first_error or errno.errorcode.get(exc.errno, str(exc.errno))
            continue
        elapsed = time.perf_counter_ns() - t0
        try:
            os.read(fd, 1)  # proves the open file works (in passthrough, the read goes to the backing file)
        except OSError as exc:
            os.close(fd)
            first_error = first_error or f"{errno.errorcode.get(exc.errno, str(exc.errno))} (read)"
            continue
        fds.append(fd)
        open_ns.append(elapsed)
    say({
        "opened": len(fds),
        "failed": count - len(fds),
        "errno": first_error,
        "open_ns": open_ns,
        "wall_s": time.perf_counter() - started,
    })
    if sys.stdin.readline().strip() != "close":
        return 2
    started = time.perf_counter()
    for fd in fds:
        os.close(fd)
    say({"close_s": time.perf_counter() - started})
    return 0


# ---------------------------------------------------------------- one step


def measure_step(mounted: MountedTarget, count: int, client_nofile: int, *,
                 timeout_s: float | None = None) -> dict[str, Any]:
    """Open `count` fd-pressure files through `mounted`, hold, close; the measured columns.

    The files must exist (prepare_files) under the mount's FILES_DIR; the caller owns the
    mount and gives a fresh one (the baseline is taken as found). `timeout_s` bounds the
    open and the close phase each (default: 30 s plus 5 ms per file); past it the step
    fails with FdPressureError, the client is killed and, if it hangs, the mount aborted.
    """
    phase_timeout = timeout_s if timeout_s is not None else PHASE_TIMEOUT_S + PHASE_TIMEOUT_PER_FILE_S * count
    directory = mounted.path / FILES_DIR
    baseline = take_counts(mounted)
    with ExitStack() as stack:
        client = _Client(directory, count, client_nofile)
        stack.callback(client.stop, mounted.connection)
        client.receive(READY_TIMEOUT_S, "starting")
        noise = file_nr_noise()
        before = take_counts(mounted, client.pid)
        client.send("open")
        opened = client.receive(phase_timeout, f"opening {count} files")
        held = take_counts(mounted, client.pid)
        client.send("close")
        closed = client.receive(phase_timeout, "closing its files")
        if client.process.wait(EXIT_TIMEOUT_S) != 0:
            raise FdPressureError(f"the client exited with status {client.process.returncode}")
    differences = _settle(mounted, baseline, noise)

    # A FUSE target whose daemon could not be found: its fds would pass for hidden files.
    daemon_counted = mounted.daemon_pid is not None or mounted.mountpoint is None
    notes = [] if daemon_counted else ["the daemon's pid is unknown: its fds are not counted, hidden_files not derived"]
    daemon_fds_delta = _delta(held.daemon_fds, before.daemon_fds)
    client_fds_delta = _delta(held.client_fds, before.client_fds)
    file_nr_delta = held.file_nr - before.file_nr
    bfilp_delta = _delta(held.bfilp_active, before.bfilp_active)
    open_ns = opened["open_ns"]
    p50, p99 = percentile(open_ns, 50), percentile(open_ns, 99)
    return {
        "open_files": count,
        "opened": opened["opened"],
        "failed": opened["failed"],
        "errno": opened["errno"],
        "daemon_fds_before": before.daemon_fds,
        "daemon_fds_delta": daemon_fds_delta,
        "client_fds_delta": client_fds_delta,
        "file_nr_delta": file_nr_delta,
        "hidden_files": (
            file_nr_delta - (daemon_fds_delta or 0) - client_fds_delta if daemon_counted else None
        ),
        "backing_file_objects": bfilp_delta,
        "backing_ids": _delta(held.backing_ids, before.backing_ids),
        "open_p50_us": None if p50 is None else round(p50 / 1000, 1),
        "open_p99_us": None if p99 is None else round(p99 / 1000, 1),
        "opens_per_s": round(count / opened["wall_s"], 1) if opened["wall_s"] > 0 else None,
        "daemon_rss_delta_kib": _delta(held.daemon_rss_kib, before.daemon_rss_kib),
        "kernel_bytes_per_file": (
            round(bfilp_delta * held.bfilp_objsize / opened["opened"], 1)
            if bfilp_delta is not None and opened["opened"]
            else None
        ),
        "close_s": round(closed["close_s"], 4),
        "returned_to_baseline": not differences,
        "baseline_detail": "; ".join(differences + notes) or None,
        "file_nr_noise": noise,
    }


# ---------------------------------------------------------------- all steps


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


def _new_row(target: Target, count: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FD_PRESSURE_COLUMNS)
    row.update(
        target=target.name,
        target_type=target.type,
        fd_policy=getattr(target, "fd_policy", None),
        open_files=count,
        status=STATUS_OK,
    )
    return row


def _step(target: Target, count: int, plan: FdPressure, source: Path, workdir: Path, client_nofile: int) -> dict[str, Any]:
    """One fd_pressure.csv row: mount `target` afresh, measure `count` opens, unmount."""
    row = _new_row(target, count)
    try:
        with open_target(target, source, workdir, nofile=plan.daemon_nofile) as mounted:
            notes = []
            if mounted.daemon_pid:
                row["daemon_nofile"] = nofile_soft_limit(mounted.daemon_pid)
                if row["daemon_nofile"] != plan.daemon_nofile:
                    notes.append(
                        f"the daemon runs with RLIMIT_NOFILE {row['daemon_nofile']}, not the requested "
                        f"{plan.daemon_nofile} (the target could not apply it)"
                    )
            row.update(measure_step(mounted, count, client_nofile))
            row["baseline_detail"] = "; ".join(filter(None, [*notes, row["baseline_detail"]])) or None
    except TargetUnavailable as exc:
        row.update(status=STATUS_UNAVAILABLE, error=str(exc))
    except BenchError as exc:
        row.update(status=STATUS_FAILED, error=str(exc))
    return row


def _signed(value: int | None) -> str:
    return "n/a" if value is None else f"{value:+d}"


def _describe(row: dict[str, Any]) -> str:
    head = f"fd pressure: {row['target']} N={row['open_files']}"
    if row["status"] != STATUS_OK:
        return f"{head}: {row['status']}: {row['error']}"
    baseline = "back to baseline" if row["returned_to_baseline"] else f"NOT back to baseline ({row['baseline_detail']})"
    failed = f", {row['failed']} failed ({row['errno']})" if row["failed"] else ""
    return (
        f"{head}: opened {row['opened']}{failed}; daemon fds {_signed(row['daemon_fds_delta'])}, "
        f"hidden {_signed(row['hidden_files'])}, {BACKING_FILE_SLAB} {_signed(row['backing_file_objects'])}, "
        f"open p50 {row['open_p50_us']} us; {baseline}"
    )


def run_fd_pressure(
    scenario: Scenario,
    source: Path,
    workdir: Path,
    write_row: Callable[[dict[str, Any]], None],
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every fd-pressure step of `scenario` (targets x open_files, a fresh mount each).

    Each row (FD_PRESSURE_COLUMNS) goes to `write_row` as soon as it is measured; all rows
    are returned. A target that cannot run or a step that fails gives a row with status
    unavailable or failed and the run goes on. The files are created in
    source/fusebench-fdp once and reused.
    """
    plan = scenario.fd_pressure
    if plan is None:
        return []
    source, workdir = source.resolve(), workdir.resolve()
    client_nofile = _client_nofile(plan, progress)
    progress(f"fd pressure: preparing {max(plan.open_files)} files in {source / FILES_DIR}")
    prepare_files(source, max(plan.open_files))
    rows = []
    for name in plan.targets:
        target = scenario.target(name)
        for count in plan.open_files:
            progress(f"fd pressure: {name}: opening {count} files (daemon RLIMIT_NOFILE {plan.daemon_nofile})")
            row = _step(target, count, plan, source, workdir, client_nofile)
            write_row(row)
            rows.append(row)
            progress(_describe(row))
    return rows


# ---------------------------------------------------------------- entry point


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "client":
        sys.exit("usage: python -m bench.fdpressure client DIR COUNT NOFILE")
    sys.exit(_client_main(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
