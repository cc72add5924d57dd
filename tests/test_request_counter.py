"""bench.request_counter: requests per opcode of one run, from a server's stats file or a tracer."""

from __future__ import annotations

import json
from pathlib import Path

from bench.records import RequestTotals
from bench.request_counter import RequestCounter
from bench.targets import MountedTarget


def stats_mount(tmp_path: Path, kind: str, requests: dict[str, int]) -> MountedTarget:
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"pid": None, "time": 4e9, "requests": requests}))
    return MountedTarget(name="t", type=kind, path=tmp_path, stats_file=stats)


def served(mounted: MountedTarget, requests: dict[str, int]) -> None:
    data = json.loads(mounted.stats_file.read_text())
    data["requests"] = requests
    mounted.stats_file.write_text(json.dumps(data))


def test_the_server_counts_are_the_difference_over_the_block(tmp_path: Path) -> None:
    mounted = stats_mount(tmp_path, "passthrough", {"LOOKUP": 5, "OPEN": 1})
    with RequestCounter(mounted, tracer=None) as counter:
        served(mounted, {"LOOKUP": 6, "OPEN": 2, "FLUSH": 1, "RELEASE": 1})
    assert counter.deltas() == {"LOOKUP": 1, "OPEN": 1, "FLUSH": 1, "RELEASE": 1}
    assert counter.totals() == RequestTotals(fuse_read_requests=0, fuse_write_requests=0, fuse_other_requests=4,
                                             fuse_requests_source="server", passthrough_engaged=True)
    assert [(r.opcode, r.requests) for r in counter.records("run")] == [
        ("LOOKUP", 1), ("OPEN", 1), ("RELEASE", 1), ("FLUSH", 1)]  # in opcode order


def test_a_read_reaching_a_passthrough_daemon_means_it_did_not_engage(tmp_path: Path) -> None:
    mounted = stats_mount(tmp_path, "passthrough", {})
    with RequestCounter(mounted, tracer=None) as counter:
        served(mounted, {"READ": 3})
    assert counter.totals().passthrough_engaged is False


class FakeTracer:
    def __init__(self, connection):
        self.connection = connection
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def counts(self) -> dict[str, int]:
        return {"READ": 7, "GETATTR": 0, "OTHER": 1}


def test_without_a_stats_file_the_tracer_counts(tmp_path: Path) -> None:
    mounted = MountedTarget(name="ext", type="external", path=tmp_path, connection=42)
    tracers: list[FakeTracer] = []
    with RequestCounter(mounted, tracer=lambda c: tracers.append(FakeTracer(c)) or tracers[-1]) as counter:
        pass
    assert tracers[0].connection == 42 and tracers[0].closed
    assert counter.deltas() == {"READ": 7, "OTHER": 1}
    assert counter.totals().fuse_requests_source == "tracepoint" and counter.totals().passthrough_engaged is None


def test_nothing_counted_leaves_the_columns_empty(tmp_path: Path) -> None:
    native = MountedTarget(name="n", type="native", path=tmp_path)
    with RequestCounter(native, tracer=None) as counter:
        pass
    assert counter.deltas() is None and counter.totals() == RequestTotals() and counter.records("r") == []
