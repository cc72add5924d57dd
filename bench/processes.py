"""Process identities that survive pid reuse, and ending only the processes they name."""

from __future__ import annotations

from typing import NamedTuple

import psutil

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
