"""FUSE requests per opcode during one measured run: from the built-in server's own counters
(its stats file), else from the kernel tracepoint (bench.tracing), else not counted; and the
transport they came through (the server's stats, else bench.transport's judgement)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection
from typing import Any

from bench.errors import BenchError
from bench.fusefs import backing
from bench.records import RequestRecord, RequestTotals, TransportFigures
from bench.targets import MountedTarget
from bench.tracing import OPCODES, RequestTracer
from bench.transport import DEV, UNKNOWN, URING, RingTails, builtin_ring_requests, judge

SERVER, TRACEPOINT = "server", "tracepoint"


class RequestCounter:
    """Counts the requests of one mount between entering and leaving a `with` block.

    `tracer` makes a started-on-enter RequestTracer for a connection (the host's), or None
    when the tracepoint cannot be used here. `rings` reads the io_uring instances of an
    external daemon by pid (the host's `ring_tails`), None: not looked at.
    """

    def __init__(self, mounted: MountedTarget, tracer: Callable[[int | None], RequestTracer] | None,
                 rings: Callable[[int], RingTails | None] | None = None) -> None:
        self._mounted = mounted
        self._make_tracer = tracer
        self._read_rings = rings
        self._transport: str | None = None  # what the built-in server's stats say
        self._ring: tuple[int | None, int | None] = (None, None)  # its ring's requests so far, before and after
        self._rings: tuple[RingTails | None, RingTails | None] = (None, None)  # an external daemon's, before, after
        self._before: dict[str, int] = {}
        self._after: dict[str, int] | None = None
        self._backing: tuple[dict[str, int], dict[str, int]] | None = None  # the server's backing totals before, after
        self._tracer: RequestTracer | None = None
        self.source = ""

    def __enter__(self) -> RequestCounter:
        if self._mounted.type == "native":
            return self
        if self._mounted.stats_file is not None:
            stats = self._mounted.read_stats(newer_than=0.0)
            if stats is not None:
                self.source, self._before = SERVER, dict(stats.get("requests", {}))
                self._backing = (_backing_totals(stats), {})
                self._transport, self._ring = stats.get("transport"), (builtin_ring_requests(stats), None)
        elif self._make_tracer is not None:
            with contextlib.suppress(BenchError):  # counting is optional; the run is not
                self._tracer = self._make_tracer(self._mounted.connection)
                self.source = TRACEPOINT
        return self

    def begin(self) -> None:
        """Count from here on (after an unmeasured warm-up inside the block)."""
        if self.source == SERVER:
            stats = self._mounted.read_stats(newer_than=time.time()) or {}
            self._before = dict(stats.get("requests", {}))
            self._ring = (builtin_ring_requests(stats) if stats else None, None)
        elif self._tracer is not None:
            self._before = dict(self._tracer.counts())
        self._rings = (self._daemon_rings(), None)

    def counted(self) -> int | None:
        """Every request the server took (its counters) or was sent (the tracepoint) so far, all
        opcodes together, for the watchdog; None when nothing counts them."""
        if self.source == SERVER:
            stats = self._mounted.read_stats()
            return None if stats is None else sum(stats.get("requests", {}).values())
        return sum(self._tracer.counts().values()) if self._tracer is not None else None

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        if self.source == SERVER:
            # A failed run records no counts: do not wait for figures a stopped server never writes.
            stats = self._mounted.read_stats(newer_than=None if kind else time.time()) or {}
            self._after = dict(stats.get("requests", {}))
            self._ring = (self._ring[0], builtin_ring_requests(stats) if stats else None)
            self._transport = stats.get("transport", self._transport)
            if self._backing is not None and stats:
                self._backing = (self._backing[0], _backing_totals(stats))
        elif self._tracer is not None:
            self._tracer.close()
            self._after = dict(self._tracer.counts())
        self._rings = (self._rings[0], self._daemon_rings())

    def _daemon_rings(self) -> RingTails | None:
        if self._mounted.type != "external" or self._read_rings is None or self._mounted.daemon_pid is None:
            return None
        return self._read_rings(self._mounted.daemon_pid)

    def deltas(self) -> dict[str, int] | None:
        """Requests per opcode name during the block (non-zero only); None when not counted."""
        if self._after is None:
            return None
        changed = {op: n - self._before.get(op, 0) for op, n in self._after.items()}
        return {op: n for op, n in changed.items() if n}

    def backing(self) -> dict[str, int] | None:
        """What the built-in server's passthrough registry did during the block: backing files
        registered and closed, and the nanoseconds spent in those ioctls (keys of
        BACKING_TOTALS; None: not the built-in server, or no stats after the block)."""
        if self._backing is None or not self._backing[1]:
            return None
        before, after = self._backing
        return {name: after[name] - before[name] for name in BACKING_TOTALS}

    def totals(self, uncached: Collection[str] = ()) -> RequestTotals:
        """The runs.csv request columns (empty when nothing counted the requests); `uncached` as
        RequestTotals.of takes it."""
        deltas = self.deltas()
        return RequestTotals() if deltas is None else RequestTotals.of(deltas, self.source, self._mounted.type,
                                                                         uncached)

    def transport(self) -> TransportFigures:
        """The runs.csv transport columns: what the built-in server's stats say (its ring's
        requests over the block), bench.transport's judgement for an external daemon, nothing
        for a native target."""
        if self._mounted.type == "native":
            return TransportFigures()
        if self._mounted.stats_file is None:
            transport, ring = judge(*self._rings, self.deltas() if self.source == TRACEPOINT else None)
            return TransportFigures(transport=transport, ring_requests=ring)
        if self._transport not in (DEV, URING):
            return TransportFigures(transport=UNKNOWN)
        before, after = self._ring
        ring = after - before if self._transport == URING and None not in (before, after) else None
        return TransportFigures(transport=self._transport, ring_requests=0 if self._transport == DEV else ring)

    def records(self, run_id: str) -> list[RequestRecord]:
        """The requests.csv rows of the run."""
        return [RequestRecord(run_id=run_id, source=self.source, opcode=op, requests=n)
                for op, n in sorted((self.deltas() or {}).items(), key=lambda item: OPCODES.get(item[0], 1 << 16))]


BACKING_TOTALS = tuple(name for name in backing.STATS if name.endswith("_total"))


def _backing_totals(stats: dict[str, Any]) -> dict[str, int]:
    return {name: int(stats.get(name, 0)) for name in BACKING_TOTALS}
