"""bench.tracing: kernel request counts, checked against known I/O on real mounts
(bindfs, and the built-in server's own counters)."""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench import tracing
from bench.scenario import ExternalTarget, FuseTarget
from bench.targets import MountedTarget, open_target
from bench.tracing import OPCODES, OTHER, Field, RequestTracer, TracingUnavailable

FORMAT_6_18 = """name: fuse_request_send
ID: 1293
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:dev_t connection;\toffset:8;\tsize:4;\tsigned:0;
\tfield:uint64_t unique;\toffset:16;\tsize:8;\tsigned:0;
\tfield:enum fuse_opcode opcode;\toffset:24;\tsize:4;\tsigned:0;
\tfield:uint32_t len;\toffset:28;\tsize:4;\tsigned:0;

print fmt: "connection %u req %llu opcode %u (%s) len %u ", REC->connection, REC->unique, \
REC->opcode, __print_symbolic(REC->opcode, {1, "FUSE_LOOKUP"}, {15, "FUSE_READ"}, \
{4096, "CUSE_INIT"}), REC->len
"""
BLOCK = 4096


def test_parse_format_reads_id_fields_and_opcode_names() -> None:
    point = tracing.parse_format(FORMAT_6_18)
    assert point.id == 1293
    assert point.fields["connection"] == Field(offset=8, size=4)
    assert point.fields["opcode"] == Field(offset=24, size=4)
    assert point.fields["unique"] == Field(offset=16, size=8)
    assert point.opcode_names == {"LOOKUP": 1, "READ": 15}


def _decode(program: bytes) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) per instruction."""
    return [
        (code, regs & 0xF, regs >> 4, off, imm)
        for code, regs, off, imm in struct.iter_unpack("<BBhi", program)
    ]


@pytest.mark.parametrize("connection", [None, 39, 0xFFFF_FFFF])
def test_counting_program_jumps_land_on_the_exit(connection: int | None) -> None:
    opcode, conn = Field(offset=24, size=4), Field(offset=8, size=4)
    insns = _decode(tracing.counting_program(7, opcode, conn, connection))
    exit_at = len(insns) - 2
    assert insns[exit_at][0] == 0xB7 and insns[-1][0] == 0x95  # r0 = 0; exit
    conditional = [(i, insn) for i, insn in enumerate(insns) if insn[0] in (0x56, 0x15)]
    assert len(conditional) == (2 if connection is not None else 1)
    for index, (_, _, _, off, _) in conditional:
        assert index + 1 + off == exit_at
    if connection is not None:
        compare = next(insn for insn in insns if insn[0] == 0x56)
        assert compare[4] & 0xFFFF_FFFF == connection
        assert (0x61, 2, 6, conn.offset, 0) in insns
    assert (0x61, 2, 6, opcode.offset, 0) in insns
    assert (0x18, 1, 1, 0, 7) in insns  # the map fd, as a pseudo map load
    assert (0xA5, 2, 0, 1, 64) in insns  # opcodes past the array (CUSE_INIT) go to slot 0


def test_parse_format_without_id_is_unavailable() -> None:
    with pytest.raises(TracingUnavailable, match="no ID"):
        tracing.parse_format("name: fuse_request_send\n")


def test_opcode_table_is_consistent() -> None:
    assert len(set(OPCODES.values())) == len(OPCODES)
    assert all(0 < number < 64 for number in OPCODES.values())  # each has its own map slot
    assert set(tracing.DEFAULT_OPCODES) <= OPCODES.keys()
    assert OPCODES["READ"] == 15 and OPCODES["WRITE"] == 16


def test_unknown_opcode_is_rejected_before_anything_opens() -> None:
    with pytest.raises(ValueError, match="unknown FUSE opcode"):
        RequestTracer(opcodes=["READ", "NOPE"])


def test_constructing_opens_nothing_and_counts_need_a_start() -> None:
    tracer = RequestTracer(39, opcodes=["READ"])
    with pytest.raises(RuntimeError, match="not started"):
        tracer.counts()
    tracer.close()  # harmless before start


# Integration: real mounts, root only.

BINDFS = ExternalTarget(name="bindfs", type="external", command=["bindfs", "-f", "{source}", "{mountpoint}"])
BUILTIN = FuseTarget(name="builtin", type="fuse")

Mount = Callable[[str, "ExternalTarget | FuseTarget"], MountedTarget]


@pytest.fixture
def mount(require_root: None, tmp_path: Path) -> Iterator[Mount]:
    """A factory: mount(name, target) -> a mount of a fresh source holding `data` (1 MiB)."""
    reason = tracing.tracing_unavailable_reason()
    if reason:
        pytest.skip(f"tracing unavailable: {reason}")
    with ExitStack() as mounts:

        def mount_one(name: str, target: ExternalTarget | FuseTarget) -> MountedTarget:
            if isinstance(target, ExternalTarget) and shutil.which(target.command[0]) is None:
                pytest.skip(f"needs {target.command[0]}")
            source = tmp_path / f"{name}-source"
            source.mkdir()
            (source / "data").write_bytes(os.urandom(256 * BLOCK))
            return mounts.enter_context(open_target(target, source, tmp_path / f"{name}-work"))

        yield mount_one


def _direct_io(path: Path, blocks: int, write: bool = False) -> None:
    """blocks x 4k preads (or pwrites) with O_DIRECT: one FUSE request each."""
    buffer = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT needs
    fd = os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)
    try:
        for block in range(blocks):
            done = (os.pwritev if write else os.preadv)(fd, [buffer], block * BLOCK)
            assert done == BLOCK
    finally:
        os.close(fd)


@pytest.mark.integration
def test_kernel_opcode_names_match_ours(mount: Mount) -> None:
    for name, number in tracing.tracepoint().opcode_names.items():
        assert OPCODES[name] == number


@pytest.mark.integration
def test_direct_reads_count_one_read_each(mount: Mount) -> None:
    mounted = mount("a", BINDFS)
    with RequestTracer(mounted.connection) as tracer:
        _direct_io(mounted.path / "data", 100)
    counts = tracer.counts()
    assert counts["READ"] == 100
    assert counts["WRITE"] == 0
    assert counts["OPEN"] == 1
    assert tracer.program_stats()["recursion_misses"] == 0  # no request went uncounted


@pytest.mark.integration
def test_run_time_stats_time_the_program_only_while_enabled(mount: Mount) -> None:
    if Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip() != "0":
        pytest.skip("BPF run-time statistics are already on (another process holds them)")
    mounted = mount("a", BINDFS)
    with RequestTracer(mounted.connection) as tracer:
        _direct_io(mounted.path / "data", 20)
        assert tracer.program_stats()["run_time_ns"] == 0
        with tracing.bpf_run_time_stats():
            _direct_io(mounted.path / "data", 20)
            timed = tracer.program_stats()
        assert timed["run_time_ns"] > 0
        assert timed["run_cnt"] >= 20  # it runs for every FUSE mount's requests
        _direct_io(mounted.path / "data", 20)
    assert tracer.program_stats() == timed


@pytest.mark.integration
def test_direct_writes_count_as_write(mount: Mount) -> None:
    mounted = mount("a", BINDFS)
    with RequestTracer(mounted.connection) as tracer:
        _direct_io(mounted.path / "data", 50, write=True)
    assert tracer.counts()["WRITE"] == 50
    assert tracer.counts()["READ"] == 0


@pytest.mark.integration
def test_connection_filter_separates_mounts(mount: Mount) -> None:
    first, second = mount("a", BINDFS), mount("b", BINDFS)
    assert first.connection != second.connection
    with (
        RequestTracer(first.connection, opcodes=["READ"]) as only_first,
        RequestTracer(second.connection, opcodes=["READ"]) as only_second,
        RequestTracer(opcodes=["READ"]) as everything,
    ):
        _direct_io(first.path / "data", 20)
        _direct_io(second.path / "data", 30)
    assert only_first.counts()["READ"] == 20
    assert only_second.counts()["READ"] == 30
    assert everything.counts()["READ"] >= 50  # other FUSE mounts on the host count too


@pytest.mark.integration
def test_unlisted_opcodes_land_in_other_and_counts_freeze_at_close(mount: Mount) -> None:
    mounted = mount("a", BINDFS)
    with RequestTracer(mounted.connection, opcodes=["READ"]) as tracer:
        _direct_io(mounted.path / "data", 10)
    final = tracer.counts()
    assert set(final) == {"READ", OTHER}
    assert final["READ"] == 10
    assert final[OTHER] >= 2  # at least OPEN and RELEASE
    _direct_io(mounted.path / "data", 10)
    assert tracer.counts() == final


def _stats_newer_than(mounted: MountedTarget, moment: float, timeout: float = 5.0) -> dict:
    """The built-in server's stats, once a snapshot taken after `moment` is on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = mounted.read_stats()
        if stats is not None and stats["time"] > moment:
            return stats
        time.sleep(0.05)
    raise AssertionError(f"no stats newer than {moment} in {mounted.stats_file} within {timeout} s")


@pytest.mark.integration
def test_tracer_agrees_with_the_builtin_servers_counters(mount: Mount, require_fio: None) -> None:
    mounted = mount("builtin", BUILTIN)
    before = _stats_newer_than(mounted, time.time())
    with RequestTracer(mounted.connection) as tracer:
        _direct_io(mounted.path / "data", 100)
        _direct_io(mounted.path / "data", 40, write=True)
        # concurrent requests on several server threads
        subprocess.run(
            ["fio", "--name=cross", f"--filename={mounted.path / 'data'}", "--rw=randrw", "--bs=4k",
             "--direct=1", "--ioengine=libaio", "--iodepth=16", "--size=1M", "--time_based",
             "--runtime=2", "--output-format=json"],
            check=True, capture_output=True,
        )
    after = _stats_newer_than(mounted, time.time())
    counted = tracer.counts()
    for opcode in ("READ", "WRITE", "OPEN"):
        served = after["requests"].get(opcode, 0) - before["requests"].get(opcode, 0)
        assert counted[opcode] == served, f"{opcode}: tracer {counted[opcode]}, server {served}"
    assert counted["READ"] > 1000  # fio did run
