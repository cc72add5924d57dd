"""Processes fusebench starts or ends: identities that survive pid reuse, ending only the
processes they name, and commands started in their own process group (fio, programs)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import psutil

from bench.stop import POLL_S, StopToken

# Thread states of a process at work: running, or in uninterruptible (I/O) wait.
BUSY_STATES = frozenset("RD")
# psutil derives create_time from clock ticks: two distinct processes differ by >= 10 ms.
CREATE_TIME_TOLERANCE_S = 0.001


class ProcessId(NamedTuple):
    """A process identity that survives pid reuse."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The identity of a running (or unreaped) process, or None when it is gone."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None


def threads_busy(pid: int) -> bool:
    """Whether a thread of `pid` is in a BUSY_STATES state (/proc/PID/task/*/stat); False when it is gone."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the thread ended meanwhile
        if text[text.rindex(")") + 2] in BUSY_STATES:  # the state follows the parenthesised name
            return True
    return False


def live_process(ident: ProcessId) -> psutil.Process | None:
    """The process if `ident` still names a running, non-zombie process."""
    try:
        proc = psutil.Process(ident.pid)
        if abs(proc.create_time() - ident.create_time) > CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def end_process(ident: ProcessId, timeout: float = 5.0) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL; only if pid AND create_time match.

    Returns True if the process was running and has been ended.
    """
    proc = live_process(ident)
    if proc is None:
        return False
    try:
        proc.terminate()
        proc.resume()  # a stopped process acts on SIGTERM only once continued
        _, alive = psutil.wait_procs([proc], timeout=timeout)
        for rest in alive:
            rest.kill()
        psutil.wait_procs(alive, timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    return True


class Started:
    """A command started without a shell in its own process group, so that stopping it reaches
    every process it forks; waited for with a timeout and a stop token."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None,
                 keep_stdout: bool = True) -> None:
        # Raises OSError when the command cannot be started; callers say what it was for.
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            process_group=0,
            env=env,
        )

    @property
    def pid(self) -> int:
        """The command's pid (its process group id too)."""
        return self._popen.pid

    def wait(self, timeout: float, stop: StopToken | None = None) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) once the command ends. Past `timeout` it is stopped and
        subprocess.TimeoutExpired raised; when `stop` abandons the run meanwhile, it is stopped
        and Interrupted raised."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = self._popen.communicate(timeout=min(POLL_S, max(deadline - time.monotonic(), 0)))
                return self._popen.returncode, stdout or "", stderr or ""
            except subprocess.TimeoutExpired:
                if stop is not None and stop.abandoned:
                    self._give_up()
                    stop.check()
                if time.monotonic() >= deadline:
                    self._give_up()
                    raise

    def _give_up(self) -> None:
        self.stop()
        try:
            self._popen.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            # A process that setsid() away from the group and is blocked in FUSE keeps the pipes
            # open until the caller aborts the connection, so stop waiting for them here.
            for pipe in (self._popen.stdout, self._popen.stderr):
                if pipe is not None:
                    pipe.close()

    def stop(self, grace: float = 5.0) -> None:
        """End the command and its process group: SIGTERM, then SIGKILL after `grace` s."""
        if self._popen.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self._popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self._popen.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment fusebench starts workloads and their preparations in: PATH and a C
    locale (nothing from the caller's environment leaks in), plus `extra`."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C", **(extra or {})}


def stderr_tail(stderr: str, who: str, lines: int = 3) -> str:
    """The last lines `who` said on stderr, as '; <who> said: ...' (empty if nothing)."""
    kept = [line for line in stderr.strip().splitlines() if line.strip()][-lines:]
    return f"; {who} said: {' | '.join(kept)[:500]}" if kept else ""
