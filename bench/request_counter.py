"""FUSE requests per opcode during one measured run: from the built-in server's own counters
(its stats file), else from the kernel tracepoint (bench.tracing), else not counted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from bench.errors import BenchError
from bench.records import RequestRecord, RequestTotals
from bench.targets import MountedTarget
from bench.tracing import OPCODES, RequestTracer

SERVER, TRACEPOINT = "server", "tracepoint"


class RequestCounter:
    """Counts the requests of one mount between entering and leaving a `with` block.

    `tracer` makes a started-on-enter RequestTracer for a connection (the host's), or None
    when the tracepoint cannot be used here.
    """

    def __init__(self, mounted: MountedTarget, tracer: Callable[[int | None], RequestTracer] | None) -> None:
        self._mounted = mounted
        self._make_tracer = tracer
        self._before: dict[str, int] = {}
        self._after: dict[str, int] | None = None
        self._tracer: RequestTracer | None = None
        self.source = ""

    def __enter__(self) -> RequestCounter:
        if self._mounted.type == "native":
            return self
        if self._mounted.stats_file is not None:
            stats = self._mounted.read_stats(newer_than=0.0)
            if stats is not None:
                self.source, self._before = SERVER, dict(stats.get("requests", {}))
        elif self._make_tracer is not None:
            with contextlib.suppress(BenchError):  # counting is optional; the run is not
                self._tracer = self._make_tracer(self._mounted.connection)
                self.source = TRACEPOINT
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.source == SERVER:
            self._after = dict((self._mounted.read_stats(newer_than=time.time()) or {}).get("requests", {}))
        elif self._tracer is not None:
            self._tracer.close()
            self._after = dict(self._tracer.counts())

    def deltas(self) -> dict[str, int] | None:
        """Requests per opcode name during the block (non-zero only); None when not counted."""
        if self._after is None:
            return None
        changed = {op: n - self._before.get(op, 0) for op, n in self._after.items()}
        return {op: n for op, n in changed.items() if n}

    def totals(self) -> RequestTotals:
        """The runs.csv request columns (empty when nothing counted the requests)."""
        deltas = self.deltas()
        return RequestTotals() if deltas is None else RequestTotals.of(deltas, self.source, self._mounted.type)

    def records(self, run_id: str) -> list[RequestRecord]:
        """The requests.csv rows of the run."""
        return [RequestRecord(run_id=run_id, source=self.source, opcode=op, requests=n)
                for op, n in sorted((self.deltas() or {}).items(), key=lambda item: OPCODES.get(item[0], 1 << 16))]
