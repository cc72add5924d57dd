"""Request counters (per worker thread, lock-free) and the JSON stats file."""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from typing import Any, Callable

from bench.fusefs import protocol as p
from bench.fusefs.files import atomic_write


class Counters:
    """One worker's counts: written only by that worker, summed by the stats writer."""

    __slots__ = ("requests", "bytes", "errors")

    def __init__(self) -> None:
        self.requests = [0] * p.MAX_OPCODE
        self.bytes = [0, 0]  # READ, WRITE payload bytes
        self.errors: dict[int, int] = {}


def daemon_fds() -> int:
    """Open fds of this process (excluding the one listing them)."""
    return len(os.listdir("/proc/self/fd")) - 1


def snapshot(counters: list[Counters]) -> dict[str, Any]:
    """Cumulative totals over all workers."""
    requests = [0] * p.MAX_OPCODE
    read_bytes = write_bytes = 0
    errors: dict[str, int] = {}
    for c in counters:
        for opcode, count in enumerate(c.requests):
            requests[opcode] += count
        read_bytes += c.bytes[0]
        write_bytes += c.bytes[1]
        for err, count in list(c.errors.items()):
            name = errno.errorcode.get(err, str(err))
            errors[name] = errors.get(name, 0) + count
    by_name = {p.OPCODE_NAMES.get(op, str(op)): n for op, n in enumerate(requests) if n}
    by_name.setdefault("READ", 0)
    by_name.setdefault("WRITE", 0)
    return {"requests": by_name, "bytes": {"READ": read_bytes, "WRITE": write_bytes},
            "errors": errors, "errors_total": sum(errors.values())}


class StatsWriter:
    """Writes the stats file every `interval` seconds on a daemon thread, and once at stop()."""

    def __init__(self, path: str, interval: float, collect: Callable[[], dict[str, Any]]) -> None:
        self._path = path
        self._interval = interval
        self._collect = collect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fusefs-stats", daemon=True)

    def start(self) -> None:
        """Write once now, then periodically."""
        self.write()
        self._thread.start()

    def write(self) -> None:
        """Write the current stats."""
        data = self._collect()
        data["time"] = time.time()
        atomic_write(self._path, json.dumps(data), durable=False)

    def stop(self) -> None:
        """Stop the periodic writes and write the final stats."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.write()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.write()
            except OSError as exc:  # keep serving: the stats file is not worth the mount
                print(f"fusefs: cannot write stats: {exc}", file=sys.stderr, flush=True)
                return
