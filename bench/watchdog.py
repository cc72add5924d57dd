"""Notice a FUSE server that stopped answering while a workload runs, and abort its connection.

The rule (`StallRule`): the server is stuck when, for `HUNG_AFTER_S` on end, the kernel had
requests waiting for it (fusectl `waiting` above zero at every reading), not one of them was
answered, and, when its pid is known, no thread of the daemon was running or in I/O wait
(a stopped daemon's threads are in T, a deadlocked one's in S; one flushing gigabytes for a
long FSYNC is in D or R, alive). Progress is `counted - waiting`, where `counted` is what
the server took (the built-in server's own counters, raised when it reads a request off the
device, not when the kernel queues it) or what the kernel sent it (the tracepoint, raised
with `waiting` as a request is queued). An answer takes one off `waiting` and so raises the
figure, as does the built-in server taking a request; a request queued for a stopped server
never raises it, so a client that blocks on it does not pass for progress. A slow server that
answers every few seconds raises it at each answer and is left alone. A server whose requests nothing counts (an external server without the
tracepoint) is not judged: the workload's timeout still ends such a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from bench.errors import BenchError
from bench.host import Host

log = logging.getLogger(__name__)

# How long requests may wait with none answered before the server counts as stopped.
HUNG_AFTER_S = 10.0
POLL_S = 0.5  # also the rule's resolution: a stop is noticed within HUNG_AFTER_S + POLL_S


class ServerStopped(BenchError):
    """The FUSE server stopped answering; its connection was aborted."""


@dataclass(frozen=True)
class Reading:
    """One look at a connection: when (monotonic s), the requests waiting for the server, the
    requests the server took or was sent so far, and whether a thread of the daemon was
    running or in I/O wait (False when its pid is unknown)."""

    at: float
    waiting: int
    counted: int
    busy: bool = False

    @property
    def answered(self) -> int:
        """Rises at an answer (and at a take, on the server's counters), never when a request is
        only queued (up to a constant)."""
        return self.counted - self.waiting


class StallRule:
    """Readings in time order in, whether the server has stopped answering out."""

    def __init__(self, window_s: float = HUNG_AFTER_S) -> None:
        self.window_s = window_s
        self._previous: Reading | None = None
        self._since: float | None = None  # the first reading of the current stall

    def feed(self, reading: Reading) -> bool:
        """True when requests waited, none was answered and the daemon was never busy for the
        whole window up to `reading`."""
        answered = self._previous is None or reading.answered > self._previous.answered
        self._previous = reading
        if reading.waiting <= 0:
            self._since = None
        elif answered or reading.busy or self._since is None:
            self._since = reading.at
        return self._since is not None and reading.at - self._since >= self.window_s


class Watchdog:
    """While inside a `with` block, reads a connection every POLL_S; when `StallRule` says the
    server stopped answering, aborts the connection (the blocked workload then fails) and keeps
    why in `reason`. `counted()` is the server's cumulative request count (None at a moment it
    cannot be read); `daemon_pid` the server's pid, when known. Without a connection or
    `counted` it does nothing."""

    def __init__(self, host: Host, connection: int | None, counted: Callable[[], int | None] | None,
                 daemon_pid: int | None = None, window_s: float = HUNG_AFTER_S) -> None:
        self._host = host
        self._connection = connection
        self._counted = counted
        self._daemon_pid = daemon_pid
        self._rule = StallRule(window_s)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fusebench-watchdog", daemon=True)
        self.reason: str | None = None

    def __enter__(self) -> Watchdog:
        if self._connection is not None and self._counted is not None:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self) -> None:
        """Raise ServerStopped when the server was found stopped (whatever the workload said)."""
        if self.reason is not None:
            raise ServerStopped(self.reason)

    def _watch(self) -> None:
        try:
            while not self._done.wait(POLL_S):
                waiting, counted = self._host.waiting_requests(self._connection), self._counted()
                if waiting is None:
                    return  # the connection is gone: the workload fails by itself
                busy = self._daemon_pid is not None and self._host.threads_busy(self._daemon_pid)
                if counted is None or not self._rule.feed(Reading(self._host.monotonic(), waiting, counted, busy)):
                    continue
                self.reason = (f"the FUSE server stopped answering: {waiting} "
                               f"request{'s' if waiting != 1 else ''} waiting for {self._rule.window_s:g} s "
                               f"with no answer; its connection {self._connection} was aborted")
                self._host.abort_connection(self._connection)
                return
        except (OSError, ValueError) as exc:
            log.warning("cannot watch FUSE connection %s for a stopped server: %s", self._connection, exc)
