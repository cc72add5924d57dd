"""Mount and unmount the file systems fio runs against: native, built-in FUSE server, external server.

`open_target()` is a context manager that unmounts on every exit path (normal, exception,
Ctrl-C, a dead or hung daemon) and records the mount in the leftovers registry while it lives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psutil

from bench import leftovers
from bench.errors import BenchError
from bench.fusefs import mounts
from bench.fusefs.kernel import passthrough_unavailable_reason, uring_unavailable_reason
from bench.fusefs.options import server_argv
from bench.processes import ProcessId, end_process, live_process
from bench.scenario import (
    AnyTarget,
    ExternalTarget,
    FuseTarget,
    NativeTarget,
    PassthroughTarget,
    builtin_options,
    needs_uring,
)
from bench.workspace import server_log, stats_path, target_mountpoint

log = logging.getLogger(__name__)

BUILTIN_MODULE = "bench.fusefs"
BUILTIN_READY_TIMEOUT_S = 10.0
BUILTIN_STOP_TIMEOUT_S = 5.0
STATS_SETTLE_S = 2.0  # several stats-file periods of the built-in server
# A daemonizing server forks right after mounting; wait this long for the fork before
# taking the started process as the daemon.
DAEMONIZE_SETTLE_S = 0.3
# Said when an external server exits without mounting: a daemonizing one may have nowhere to print.
DAEMONIZED_HINT = ("a server that daemonizes may report its errors only to syslog; run it in the foreground "
                   "(e.g. with -f, as libfuse servers take it) to see them")
# A server usually exits by itself once unmounted (ENODEV); give it this long before SIGTERM.
NATURAL_EXIT_S = 1.0
_POLL_S = 0.02
_LOG_TAIL_CHARS = 2000


class TargetUnavailable(BenchError):
    """The target cannot run on this machine (the run is skipped, status "unavailable")."""


class TargetError(BenchError):
    """The target was tried and failed (status "failed")."""


@dataclass
class MountedTarget:
    """A target ready for fio: `path` is where fio works."""

    name: str
    type: str
    path: Path
    mountpoint: Path | None = None
    daemon_pid: int | None = None
    stats_file: Path | None = None
    connection: int | None = None
    log_file: Path | None = field(default=None, repr=False)

    def read_stats(self, newer_than: float | None = None) -> dict | None:
        """The built-in server's stats (INTERNALS.md), or None when there are none.

        With `newer_than` (epoch s), wait up to STATS_SETTLE_S for figures this mount's daemon
        wrote at or after that time: the file is rewritten a few times a second, so right after
        an event it still holds earlier figures. Past the wait the latest file is returned as is.
        """
        if self.stats_file is None:
            return None
        deadline = time.monotonic() + STATS_SETTLE_S
        while True:
            try:
                stats = json.loads(self.stats_file.read_text())
            except (OSError, ValueError):
                stats = None
            if newer_than is None or time.monotonic() > deadline:
                return stats
            if stats is not None and stats.get("pid") == self.daemon_pid and stats.get("time", 0) >= newer_than:
                return stats
            time.sleep(0.05)


# ---------------------------------------------------------------- availability


def target_unavailable_reason(target: AnyTarget) -> str | None:
    """Why `target` cannot run on this machine, or None when it can."""
    if isinstance(target, NativeTarget):
        return None
    if os.geteuid() != 0:
        return "FUSE targets need root (run as root or with sudo)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (load the fuse module: modprobe fuse)"
    if needs_uring(target) and (why := uring_unavailable_reason()):
        return why
    if isinstance(target, ExternalTarget):
        command = target.command[0]
        if shutil.which(command) is None:
            return f"command {command!r} not found on PATH"
        return None
    if isinstance(target, PassthroughTarget):
        return passthrough_unavailable_reason()
    return None


# ---------------------------------------------------------------- built-in argv

def builtin_argv(target: FuseTarget | PassthroughTarget, source: Path, mountpoint: Path, stats_file: Path,
                 stats_interval: float, nofile: int | None) -> list[str]:
    """The command line of the built-in server for `target`."""
    values = dict(builtin_options(target), stats_file=stats_file, stats_interval=stats_interval, nofile=nofile)
    return [sys.executable, "-m", BUILTIN_MODULE, str(source), str(mountpoint), *server_argv(values)]


# ---------------------------------------------------------------- server process


def _log_tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return text[-_LOG_TAIL_CHARS:] or "(nothing)"


def _server_failed(name: str, what: str, log_file: Path, hint: str = "") -> TargetError:
    return TargetError(f"target {name}: {what}; it printed ({log_file}):\n{_log_tail(log_file)}"
                       + (f"\nhint: {hint}" if hint else ""))


def _start(argv: list[str], log_file: Path, nofile: int | None) -> subprocess.Popen:
    def limit_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log_file, "wb") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Own session: Ctrl-C on the terminal must not kill the server before we unmount.
            start_new_session=True,
            # Set in the child before exec so a server that forks inherits it too.
            preexec_fn=limit_fds if nofile is not None else None,
        )


def _wait_mounted(name: str, popen: subprocess.Popen, mountpoint: Path, timeout: float, log_file: Path,
                  hint: str) -> None:
    """Until `mountpoint` appears; TargetError naming the command when the server exits first
    or the mount does not come (with `hint` when the server exited)."""
    command = shlex.join(str(arg) for arg in popen.args)
    deadline = time.monotonic() + timeout
    while not mounts.is_mounted(mountpoint):
        code = popen.poll()
        if code not in (None, 0):
            raise _server_failed(name, f"the server command `{command}` exited with status {code} before mounting "
                                 f"{mountpoint}", log_file, hint)
        if time.monotonic() >= deadline:
            state = "exited with status 0" if code == 0 else "is still running"
            raise _server_failed(name, f"{mountpoint} did not appear within {timeout:g} s after `{command}` "
                                 f"(which {state})", log_file, hint if code == 0 else "")
        time.sleep(_POLL_S)


def _find_daemon(popen: subprocess.Popen, connection: int | None, may_daemonize: bool) -> int | None:
    """The pid serving `connection`: the forked daemon if the server daemonized, else the started process."""
    settle_until = time.monotonic() + (DAEMONIZE_SETTLE_S if may_daemonize else 0.0)
    while True:
        running = popen.poll() is None
        holders = mounts.connection_holders(connection) if connection is not None else []
        others = [pid for pid in holders if pid != popen.pid]
        if not running:
            # Daemonized; no holder means a kernel without fuse_connection in fdinfo (< 6.16).
            return others[0] if others else None
        if time.monotonic() >= settle_until:
            # Still running: a foreground server, or a wrapper whose child holds the device.
            return popen.pid if popen.pid in holders or not others else others[0]
        time.sleep(_POLL_S)


def _stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP): it will not exit by itself."""
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    return False


def _end_started(popen: subprocess.Popen, timeout: float) -> None:
    """Let the server exit by itself after the unmount (unless it is stopped), then SIGTERM, then SIGKILL."""
    if not _stopped(popen.pid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(NATURAL_EXIT_S)
            return
    popen.terminate()
    popen.send_signal(signal.SIGCONT)  # a stopped server acts on SIGTERM only once continued
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def _stop(name: str, popen: subprocess.Popen, mountpoint: Path, daemon: ProcessId | None,
          connection: int | None, timeout: float) -> None:
    """Unmount, then end the started process and the daemon it forked."""
    try:
        daemon_dead = daemon is not None and live_process(daemon) is None
        if daemon_dead and connection is not None and mounts.is_mounted(mountpoint):
            # Anything blocked on a mount whose daemon died waits until the connection is aborted.
            mounts.abort_connection(connection)
        mounts.unmount(mountpoint, timeout, connection=connection)
    except OSError as exc:
        raise TargetError(f"target {name}: {exc}") from None
    finally:
        _end_started(popen, timeout)
        if daemon is not None and daemon.pid != popen.pid:
            end_process(daemon, timeout)


@contextlib.contextmanager
def _serve(name: str, type_: str, argv: list[str], mountpoint: Path, workdir: Path, *, nofile: int | None,
           ready_timeout: float, stop_timeout: float, may_daemonize: bool,
           stats_file: Path | None = None) -> Iterator[MountedTarget]:
    if mounts.is_mounted(mountpoint):
        raise TargetError(f"target {name}: {mountpoint} is already mounted (a leftover? see `grep fuse /proc/mounts`)")
    mountpoint.mkdir(parents=True, exist_ok=True)
    if stats_file is not None:
        stats_file.unlink(missing_ok=True)  # read_stats() must never return an earlier server's figures
    log_file = server_log(workdir, name)
    # Recorded before the server starts: a run killed the moment the mount appears (before it
    # could note the server) still leaves the next run a mountpoint to clear.
    entry = leftovers.register(name, mountpoint=mountpoint)
    try:
        popen = _start(argv, log_file, nofile)
    except OSError as exc:
        leftovers.unregister(entry)
        raise TargetError(f"target {name}: cannot start {argv[0]}: {exc.strerror}") from None
    started = ProcessId.of(popen.pid)
    if started:
        leftovers.update(entry, add_processes=[started])
    daemon: ProcessId | None = None
    connection: int | None = None
    try:
        _wait_mounted(name, popen, mountpoint, ready_timeout, log_file, DAEMONIZED_HINT if may_daemonize else "")
        connection = mounts.connection_id(mountpoint)
        daemon_pid = _find_daemon(popen, connection, may_daemonize)
        daemon = ProcessId.of(daemon_pid) if daemon_pid is not None else None
        leftovers.update(entry, connection=connection, add_processes=[daemon] if daemon else [])
        mounted = MountedTarget(name=name, type=type_, path=mountpoint, mountpoint=mountpoint,
                                daemon_pid=daemon.pid if daemon else None, stats_file=stats_file,
                                connection=connection, log_file=log_file)
        yield mounted
    except BaseException:
        try:
            _stop(name, popen, mountpoint, daemon, connection, stop_timeout)
        except BenchError as exc:
            log.warning("%s", exc)  # the original exception matters more
        else:
            leftovers.unregister(entry)
        raise
    _stop(name, popen, mountpoint, daemon, connection, stop_timeout)
    leftovers.unregister(entry)


def open_target(target: AnyTarget, source: Path, workdir: Path, *, nofile: int | None = None,
                stats_interval: float = 0.25) -> contextlib.AbstractContextManager[MountedTarget]:
    """Mount `source` as `target` (under `workdir` for FUSE targets) for the duration of a `with`.

    Raises TargetUnavailable when it cannot run here, TargetError when it fails.
    """
    return _open_target(target, Path(source).resolve(), Path(workdir).resolve(), nofile, stats_interval)


@contextlib.contextmanager
def _open_target(target: AnyTarget, source: Path, workdir: Path, nofile: int | None,
                 stats_interval: float) -> Iterator[MountedTarget]:
    reason = target_unavailable_reason(target)
    if reason:
        raise TargetUnavailable(f"target {target.name}: {reason}")
    if not source.is_dir():
        raise TargetError(f"target {target.name}: source {source} is not a directory")
    if isinstance(target, NativeTarget):
        yield MountedTarget(name=target.name, type=target.type, path=source)
        return
    workdir.mkdir(parents=True, exist_ok=True)
    mountpoint = target_mountpoint(workdir, target.name)
    if isinstance(target, ExternalTarget):
        with _serve(target.name, target.type, target.argv(source, mountpoint), mountpoint, workdir, nofile=nofile,
                    ready_timeout=target.ready_timeout, stop_timeout=target.stop_timeout,
                    may_daemonize=True) as mounted:
            yield mounted
        return
    stats_file = stats_path(workdir, target.name)
    argv = builtin_argv(target, source, mountpoint, stats_file, stats_interval, nofile)
    # The built-in server limits its own fds (--nofile) after start-up, so no rlimit is set here.
    with _serve(target.name, target.type, argv, mountpoint, workdir, nofile=None,
                ready_timeout=BUILTIN_READY_TIMEOUT_S, stop_timeout=BUILTIN_STOP_TIMEOUT_S,
                may_daemonize=False, stats_file=stats_file) as mounted:
        yield mounted
