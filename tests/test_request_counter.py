"""bench.request_counter: requests per opcode of one run, from a server's stats file or a tracer."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fio_output import Direction, FioResult
from bench.fusefs import kernel
from bench.measure import Done
from bench.records import RequestTotals, TransportFigures
from bench.request_counter import RequestCounter
from bench.scenario import parse_scenario
from bench.session import uncached_requests
from bench.targets import MountedTarget
from bench.tracing import tracing_unavailable_reason


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


def test_the_built_in_server_says_its_transport_and_what_its_ring_served_over_the_block(tmp_path: Path) -> None:
    mounted = stats_mount(tmp_path, "fuse", {"LOOKUP": 5})
    data = json.loads(mounted.stats_file.read_text())
    mounted.stats_file.write_text(json.dumps(dict(data, transport="uring", ring={"requests": {"LOOKUP": 4}})))
    with RequestCounter(mounted, tracer=None) as counter:
        counter.begin()
        data = json.loads(mounted.stats_file.read_text())
        data["ring"]["requests"] = {"LOOKUP": 5, "READ": 40, "OPEN": 1}
        mounted.stats_file.write_text(json.dumps(data))
    assert counter.transport() == TransportFigures(transport="uring", ring_requests=42)
    dev = stats_mount(tmp_path, "passthrough", {})
    served(dev, {})
    dev.stats_file.write_text(json.dumps(dict(json.loads(dev.stats_file.read_text()), transport="dev")))
    with RequestCounter(dev, tracer=None) as counter:
        pass
    assert counter.transport() == TransportFigures(transport="dev", ring_requests=0)
    older = stats_mount(tmp_path, "fuse", {})  # a server that does not say
    with RequestCounter(older, tracer=None) as counter:
        pass
    assert counter.transport() == TransportFigures(transport="unknown")


def test_an_external_daemons_transport_is_judged_from_its_rings_around_the_measured_block(tmp_path: Path) -> None:
    mounted = MountedTarget(name="ext", type="external", path=tmp_path, connection=42, daemon_pid=77)
    tails = iter([{"77/5": 10}, {"77/5": 30}])
    looked_at: list[int] = []

    def rings(pid: int) -> dict[str, int]:
        looked_at.append(pid)
        return next(tails)

    with RequestCounter(mounted, tracer=CountingTracer, rings=rings) as counter:
        counter.begin()  # READ 2 so far
    # READ 3 at the end: 1 request in the block, 20 completions
    assert looked_at == [77, 77] and counter.transport() == TransportFigures(transport="uring", ring_requests=20)
    with RequestCounter(mounted, tracer=None, rings=lambda pid: {}) as counter:
        counter.begin()
    assert counter.transport() == TransportFigures(transport="dev", ring_requests=0)
    with RequestCounter(MountedTarget(name="n", type="native", path=tmp_path), tracer=None) as counter:
        pass
    assert counter.transport() == TransportFigures()


class CountingTracer(FakeTracer):
    """A tracer whose counts grow by one READ each time they are read."""

    def __init__(self, connection):
        super().__init__(connection)
        self.reads = 0

    def counts(self) -> dict[str, int]:
        self.reads += 1
        return {"READ": self.reads, "OTHER": 2}


def test_begin_counts_from_after_a_warm_up_and_counted_is_the_running_total(tmp_path: Path) -> None:
    mounted = MountedTarget(name="ext", type="external", path=tmp_path, connection=42)
    with RequestCounter(mounted, tracer=CountingTracer) as counter:
        assert counter.counted() == 3  # 1 READ + 2 OTHER so far
        counter.begin()  # the warm-up's requests are not the run's: READ 2 from here
    assert counter.deltas() == {"READ": 1}  # read 3 at the end
    served_mount = stats_mount(tmp_path, "fuse", {"LOOKUP": 5})
    with RequestCounter(served_mount, tracer=None) as counter:
        served(served_mount, {"LOOKUP": 9, "READ": 4})
        assert counter.counted() == 13


@pytest.mark.parametrize("target_type, uncached, deltas, engaged", [
    ("external", ("READ",), {"READ": 0}, True),  # fio's reads had to reach the files and none went through
    ("external", ("READ",), {"READ": 5}, False),
    ("external", ("READ",), {"WRITE": 5}, True),  # buffered writes without fsync: a writeback cache keeps them
    ("external", ("READ", "WRITE"), {"WRITE": 5}, False),
    ("external", (), {"READ": 0}, None),  # warm cache or no data moved: zero READs prove nothing
    ("passthrough", (), {"WRITE": 2}, False),
    ("fuse", ("READ",), {"READ": 0}, None),
])
def test_passthrough_engagement_is_judged_on_the_requests_no_cache_could_absorb(
        target_type: str, uncached: tuple[str, ...], deltas: dict[str, int], engaged: bool | None) -> None:
    totals = RequestTotals.of({**deltas, "LOOKUP": 1}, "tracepoint", target_type, uncached)
    assert totals.passthrough_engaged is engaged


def _done(read_bytes: int, write_bytes: int) -> Done:
    fio = FioResult.model_construct(read=Direction.model_construct(io_bytes=read_bytes),
                                    write=Direction.model_construct(io_bytes=write_bytes))
    return Done(1, 1, (read_bytes + write_bytes) / (1 << 20), 1.0, None, [], fio=fio)


@pytest.mark.parametrize("workload, read_bytes, write_bytes, uncached", [
    ("rw: write", 0, 1 << 20, ()),  # cold buffered writes, no fsync: a writeback cache may keep them all
    ("rw: write, end_fsync: true", 0, 1 << 20, ("WRITE",)),
    ("rw: write, fsync: 8", 0, 1 << 20, ("WRITE",)),
    ("rw: write, direct: true", 0, 1 << 20, ("WRITE",)),
    ("rw: randrw", 1 << 20, 1 << 20, ("READ",)),  # a cold mixed run: its reads only
    ("rw: randrw, direct: true", 1 << 20, 1 << 20, ("READ", "WRITE")),
    ("rw: read, cache: warm", 1 << 20, 0, ()),
    ("rw: read", 0, 0, ()),  # nothing moved
])
def test_a_run_is_judged_on_reads_that_were_cold_or_direct_and_writes_that_were_direct_or_fsynced(
        workload: str, read_bytes: int, write_bytes: int, uncached: tuple[str, ...]) -> None:
    text = f"name: t\ntargets: [{{name: n, type: native}}]\nworkloads:\n  - {{name: w, size: 1M, {workload}}}\n"
    (cell,) = parse_scenario(text).cells()
    assert uncached_requests(cell, _done(read_bytes, write_bytes)) == uncached


@pytest.mark.integration
def test_an_external_server_shows_whether_passthrough_engaged(tmp_path: Path, require_root: None,
                                                              require_fio: None) -> None:
    """The built-in server started as an external target (counted at the tracepoint) in
    passthrough mode engages; bindfs does not."""
    if tracing_unavailable_reason() or kernel.passthrough_unavailable_reason() or shutil.which("bindfs") is None:
        pytest.skip("needs the tracepoint, kernel passthrough and bindfs")
    builtin = json.dumps([sys.executable, "-m", "bench.fusefs", "{source}", "{mountpoint}", "--mode", "passthrough"])
    (tmp_path / "s.yaml").write_text(
        "name: ext\nrepeat: 1\ntargets:\n"
        f"  - {{name: pt, type: external, command: {builtin}}}\n"
        '  - {name: bind, type: external, command: [bindfs, -f, "{source}", "{mountpoint}"]}\n'
        "workloads: [{name: rr, rw: randread, bs: 4k, size: 8M, runtime: 1s, direct: true}]\n")
    done = subprocess.run([sys.executable, "-m", "bench", "run", "s.yaml", "--out", "out", "--workdir", "work"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "out" / "runs.csv", newline="") as handle:
        rows = {row["target"]: row for row in csv.DictReader(handle)}
    assert rows["pt"]["fuse_requests_source"] == "tracepoint" and rows["pt"]["fuse_read_requests"] == "0"
    assert rows["pt"]["passthrough_engaged"] == "true"
    assert int(rows["bind"]["fuse_read_requests"]) > 0 and rows["bind"]["passthrough_engaged"] == "false"
    assert "passthrough engaged" in done.stdout + done.stderr
