"""Ctrl-C and SIGTERM as data: a stop token the signal handler feeds and long waits consult.

The first signal asks to stop after the current run (or fd-pressure step); the second
abandons it: every wait that may be cut short (fio, a data-file fill, an fd-pressure client)
polls the token and raises Interrupted, and the context managers it unwinds unmount what was
mounted. Nothing is raised from inside a signal handler.
"""

from __future__ import annotations

import threading

POLL_S = 0.1  # how often an abandonable wait looks at the token


class Interrupted(Exception):
    """The current run was abandoned by a second stop signal (not a BenchError: no handler of
    failures may take it for a failed run)."""


class StopToken:
    """How many stop signals arrived, and a way to wait for the second one."""

    def __init__(self) -> None:
        self._signals = 0
        self._abandon = threading.Event()

    def signal(self) -> int:
        """Count one stop signal; returns how many arrived so far."""
        self._signals += 1
        if self._signals >= 2:
            self._abandon.set()
        return self._signals

    @property
    def requested(self) -> bool:
        """No new run may start."""
        return self._signals >= 1

    @property
    def abandoned(self) -> bool:
        """The current run is to be given up now."""
        return self._abandon.is_set()

    def check(self) -> None:
        """Raise Interrupted when the current run is to be abandoned."""
        if self.abandoned:
            raise Interrupted("interrupted by a second stop signal")

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less if the run is abandoned meanwhile (then raise Interrupted)."""
        self._abandon.wait(seconds)
        self.check()
