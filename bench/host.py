"""The machine a run or a check acts on, given to the runner and the doctor instead of being
reached for (as httpie passes its Environment): printing, clocks, privileges, cache
dropping, huge pages, mounting targets, data files, fio, the monitor, request tracing, the
leftovers registry, fd pressure and stop signals.

`Host` is this machine. Tests pass a subclass that overrides what they need to fake, so the
runner's session logic (resume, interrupts, failed runs, remounts) and the doctor's verdicts
are checked in milliseconds, without root.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import datafiles, environment, fio, leftovers, opens, system
from bench.commands import version_argv
from bench.errors import BenchError
from bench.fdpressure.steps import Write, run_fd_pressure
from bench.fusefs import kernel, mounts
from bench.monitor import Monitor
from bench.processes import Started, minimal_env, threads_busy
from bench.programs import Program
from bench.progress import RunProgress, notice_stream
from bench.records import FdPressureRecord
from bench.scenario import AnyTarget, Opens, Scenario, WorkloadCell
from bench.stop import StopToken
from bench.targets import MountedTarget, open_target, target_unavailable_reason
from bench.tracing import OPCODES, RequestTracer, tracing_unavailable_reason
from bench.transport import RingTails, ring_tails
from bench.workspace import SOURCE

CAP_SYS_ADMIN = 21
VERSION_TIMEOUT_S = 5.0  # an external server asked for its --version


class Host:
    """This machine, as the runner and the doctor use it."""

    # -- the terminal and clocks

    def say(self, text: str) -> None:
        """A notice for the user: on stdout at a terminal, else on stderr (piped data stays clean)."""
        print(text, file=notice_stream(), flush=True)

    def free_bytes(self, path: Path) -> int:
        """Bytes an unprivileged writer may still use on the file system of `path` (or of its
        nearest existing parent)."""
        path = Path(path)
        while not path.exists() and path != path.parent:
            path = path.parent
        info = os.statvfs(path)
        return info.f_bavail * info.f_frsize

    def output(self, text: str) -> None:
        """A line of what the command was asked for (the doctor's table, a plan): always stdout."""
        print(text, flush=True)

    def progress(self, total: int, estimate_s: float) -> RunProgress:
        """A progress display for `total` runs expected to take `estimate_s`."""
        return RunProgress(total, estimate_s)

    def now(self) -> datetime:
        """The wall clock, in UTC."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        """A clock for durations."""
        return time.monotonic()

    def children_cpu(self) -> tuple[float, float]:
        """User and system CPU seconds of every child process reaped so far, with the children
        they reaped: the kernel's exact account of a workload's process tree once it has ended."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime, usage.ru_stime

    @contextlib.contextmanager
    def stop_signals(self, stop: StopToken, on_first: Callable[[str], None]) -> Iterator[None]:
        """While inside, SIGINT and SIGTERM feed `stop`; the first also calls `on_first(signal name)`."""

        def handler(signum: int, frame: Any) -> None:
            if stop.signal() == 1:
                on_first(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    # -- privileges and facts

    def is_root(self) -> bool:
        """Running with uid 0."""
        return system.is_root()

    def has_cap_sys_admin(self) -> bool:
        """CAP_SYS_ADMIN in the effective set (mounting, passthrough, dropping caches)."""
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
        return False

    def which(self, command: str) -> str | None:
        """Where `command` is on PATH."""
        return shutil.which(command)

    def is_char_device(self, path: str) -> bool:
        """`path` exists and is a character device."""
        try:
            return stat.S_ISCHR(os.stat(path).st_mode)
        except OSError:
            return False

    def writable(self, path: Path) -> bool:
        """This process may write `path`."""
        return os.access(path, os.W_OK)

    def kernel_version(self) -> tuple[int, int]:
        """(major, minor) of the running kernel."""
        return kernel.kernel_version()

    def kernel_config(self, option: str) -> str | None:
        """A kernel build option's value, None when unknown."""
        return kernel.kernel_config(option)

    def nofile_limits(self) -> tuple[int, int]:
        """(soft, hard) RLIMIT_NOFILE of this process."""
        return resource.getrlimit(resource.RLIMIT_NOFILE)

    def fio_version(self) -> str | None:
        """fio's version, None when fio is missing or broken."""
        return fio.fio_version()

    def host_info(self) -> dict[str, Any]:
        """The environment a result is measured in (for the manifest)."""
        return system.host_info()

    def environment(self, workdir: Path) -> dict[str, Any]:
        """Everything about this machine a result depends on (bench.environment.collect)."""
        return environment.collect(workdir)

    def disk_device(self, path: Path) -> str | None:
        """The block device (its /proc/diskstats name) holding `path`, or None."""
        return environment.device_of(path)

    def disk_counters(self, device: str | None) -> environment.DiskCounters | None:
        """The device's cumulative request and byte counters (None without a device)."""
        return environment.read_diskstats(device) if device else None

    def program_version(self, program: str) -> str | None:
        """The first line `program --version` prints (an external FUSE server's version), or None."""
        try:
            status, stdout, stderr = Started(version_argv(program), env=minimal_env()).wait(VERSION_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = (stdout or stderr).strip().splitlines()
        return lines[0][:200] if lines else None

    def tracing_unavailable_reason(self) -> str | None:
        """Why FUSE requests cannot be counted at the kernel tracepoint here, or None."""
        return tracing_unavailable_reason()

    # -- system knobs

    def drop_caches(self) -> None:
        """Drop the page cache, dentries and inodes (after writing dirty pages back)."""
        system.drop_caches()

    def hugepages(self, count: int) -> AbstractContextManager[None]:
        """At least `count` free huge pages while inside (given back after)."""
        return system.hugepages(count)

    def uring_parameter(self) -> str | None:
        """The fuse module's `enable_uring` (`Y`, `N`), None on a kernel without FUSE over io_uring."""
        return system.uring_parameter()

    def fuse_uring(self) -> AbstractContextManager[str]:
        """`enable_uring` Y while inside, the earlier value (yielded) written back after."""
        return system.fuse_uring()

    def clear_leftovers(self) -> list[str]:
        """Clear what crashed runs left behind; what was done."""
        return leftovers.clear_leftovers()

    # -- targets, data and measurement

    def target_unavailable_reason(self, target: AnyTarget) -> str | None:
        """Why `target` cannot run here, or None."""
        return target_unavailable_reason(target)

    def mount(self, target: AnyTarget, source: Path, workdir: Path) -> AbstractContextManager[MountedTarget]:
        """`source` mounted as `target` while inside (unmounted on every exit path)."""
        return open_target(target, source, workdir)

    @contextlib.contextmanager
    def _probe_mount(self, target: AnyTarget, content: bytes) -> Iterator[tuple[MountedTarget, Path]]:
        """`target` mounted on a temporary directory holding one file `probe` of `content`: the
        mount and the path of that file through it (the doctor's live checks)."""
        workdir = Path(tempfile.mkdtemp(prefix="fusebench-doctor-"))
        try:
            source = workdir / SOURCE
            source.mkdir()
            (source / "probe").write_bytes(content)
            with self.mount(target, source, workdir) as mounted:
                yield mounted, Path(mounted.path) / "probe"
        finally:
            # Never recurse into a directory that might still be a mountpoint.
            if not any(entry.mountpoint.startswith(str(workdir)) for entry in mounts.mounts()):
                shutil.rmtree(workdir, ignore_errors=True)

    def probe_target(self, target: AnyTarget, size: int) -> tuple[int, dict[str, Any] | None]:
        """Mount `target` on a temporary directory, read a file of `size` random bytes through it:
        how many bytes came back, and the server's stats from after the read (the doctor's live
        checks)."""
        with self._probe_mount(target, os.urandom(size)) as (mounted, probe):
            read = len(probe.read_bytes())
            return read, mounted.read_stats(newer_than=time.time())

    def probe_backing_views(self, target: AnyTarget) -> system.BackingViews:
        """Mount `target` (passthrough) on a temporary directory, open a file through it, and
        look at what the kernel shows of its backing file while it is open: fusectl's directory
        of the connection, the daemon's /dev/fuse fdinfo and the open file's fdinfo."""
        with self._probe_mount(target, b"backing file probe\n") as (mounted, probe):
            fd = os.open(probe, os.O_RDONLY)
            try:
                os.read(fd, 1)
                connection = mounted.connection or mounts.connection_id(mounted.mountpoint or mounted.path)
                daemon: set[str] = set()
                for device_fd in system.fuse_device_fds(mounted.daemon_pid) if mounted.daemon_pid else []:
                    daemon |= set(system.fdinfo(mounted.daemon_pid, device_fd))
                return system.BackingViews(
                    connection=connection,
                    fusectl=tuple(mounts.connection_files(connection)) if connection is not None else (),
                    daemon_fdinfo=tuple(sorted(daemon)),
                    file_fdinfo=tuple(system.fdinfo("self", fd)))
            finally:
                os.close(fd)

    def ring_tails(self, pid: int) -> RingTails | None:
        """The io_uring instances of process `pid` and its descendants, with their completion
        counters (bench.transport); None when its fds cannot be read."""
        return ring_tails(pid)

    def abort_connection(self, connection: int) -> bool:
        """Abort a FUSE connection (a daemon that stopped answering)."""
        return mounts.abort_connection(connection)

    def waiting_requests(self, connection: int) -> int | None:
        """Requests of a FUSE connection its daemon has not answered yet (None: no such connection)."""
        return mounts.waiting_requests(connection)

    def threads_busy(self, pid: int) -> bool:
        """Whether a thread of process `pid` is running or in I/O wait (R or D)."""
        return threads_busy(pid)

    def prepare_files(self, cell: WorkloadCell, source: Path, stop: StopToken) -> list[Path]:
        """A fio cell's data files relative to `source`, in the state every run starts from."""
        return datafiles.prepare_files(cell, source, stop)

    def prepare_opens(self, cell: Opens, source: Path) -> Path:
        """An open/close loop's directory of files relative to `source` (created once)."""
        return opens.prepare(source, cell.files)

    def prepare_program(self, cell: Program, source: Path, scratch: Path, stop: StopToken) -> None:
        """What a catalog program needs (once per session)."""
        cell.prepare(source, scratch, stop)

    def reset_program(self, cell: Program, source: Path) -> None:
        """A catalog program's files back to the state every run starts from."""
        cell.reset(source)

    def start_fio(self, argv: list[str]) -> fio.FioProcess:
        """fio started on a checked argv."""
        return fio.FioProcess(argv)

    def start_command(self, argv: list[str], env: Mapping[str, str] | None = None) -> Started:
        """A program of a workload started in its own process group, stdout to /dev/null, in a
        minimal environment plus `env`."""
        try:
            return Started(argv, keep_stdout=False, env=minimal_env(env))
        except OSError as exc:
            raise BenchError(f"cannot start {argv[0]}: {exc.strerror}") from None

    def monitor(self, hz: float, daemon_pid: int | None, run_id: str, role: str) -> Monitor:
        """A sampler for one run (started with the workload's pid); `role` names its processes."""
        return Monitor(hz=hz, daemon_pid=daemon_pid, run_id=run_id, role=role)

    def tracer(self, connection: int | None) -> RequestTracer:
        """A started counter of every FUSE opcode on `connection` (TracingUnavailable when refused)."""
        return RequestTracer(connection, opcodes=OPCODES).start()

    def fd_pressure(self, scenario: Scenario, source: Path, workdir: Path, write: Write,
                    stop: StopToken) -> list[FdPressureRecord]:
        """The scenario's fd-pressure steps (bench.fdpressure), each written as it is measured."""
        return run_fd_pressure(scenario, source, workdir, write=write, progress=self.say, stop=stop)
