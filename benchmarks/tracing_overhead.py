"""What counting FUSE requests with bench.tracing costs: fio with and without the tracer.

Runs fio 4k random reads with O_DIRECT through a bindfs mount of a fresh temporary
directory, in pairs of runs without and with a RequestTracer on the mount's connection
(the order flips every pair so drift hits both alike). Prints IOPS both ways, the median
of the per-pair ratios and how many pairs the traced run lost (run-to-run spread here is
far larger than the tracer's cost, so only paired figures mean anything), and the
machine's busy CPU time per request. Also checks that the tracer's READ count equals
fio's I/O count, and times the counting program itself (BPF run-time statistics).
Needs root, bindfs and fio.

    .venv/bin/python benchmarks/tracing_overhead.py [--pairs 10] [--runtime 3] [--iodepth 32]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.fio_output import parse_fio_output  # noqa: E402
from bench.scenario import ExternalTarget  # noqa: E402
from bench.targets import open_target  # noqa: E402
from bench.tracing import (  # noqa: E402
    EVENT,
    RequestTracer,
    bpf_run_time_stats,
    tracing_unavailable_reason,
)

BINDFS = ExternalTarget(name="bindfs", type="external", command=["bindfs", "-f", "{source}", "{mountpoint}"])


@dataclass
class Run:
    """One fio run: IOPS, I/Os completed, busy CPU seconds of the whole machine; traced runs
    add the READs counted and the counting program's kernel statistics."""

    iops: float
    ios: int
    busy_cpu_s: float
    reads_counted: int | None = None
    program: dict[str, int] | None = None


def _busy_cpu_s() -> float:
    """CPU seconds spent not idle, summed over all CPUs, since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - times.iowait


def run_fio(data: Path, args: argparse.Namespace, runtime: int, connection: int | None) -> Run:
    """One fio run over data, counting requests with a tracer when given a connection."""
    argv = [
        "fio", "--name=randread", f"--filename={data}", "--rw=randread", "--bs=4k", "--direct=1",
        f"--ioengine={args.ioengine}", f"--iodepth={args.iodepth}", f"--runtime={runtime}",
        "--time_based", "--output-format=json",
    ]
    tracer = RequestTracer(connection, opcodes=["READ"]) if connection is not None else None
    before = _busy_cpu_s()
    with bpf_run_time_stats() if tracer else nullcontext(), tracer or nullcontext():
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    busy = _busy_cpu_s() - before
    if result.returncode:
        raise RuntimeError(f"fio failed ({result.returncode}): {result.stderr.strip()}")
    read = parse_fio_output(result.stdout).read
    if tracer is None:
        return Run(read.iops, read.total_ios, busy)
    return Run(read.iops, read.total_ios, busy, tracer.counts()["READ"], tracer.program_stats())


def _prefill(path: Path, size: int) -> None:
    """Write size bytes of random data, so reads hit real blocks."""
    chunk = 1 << 20
    with path.open("wb") as out:
        for _ in range(size // chunk):
            out.write(os.urandom(chunk))


def _sign_test_p(losses: int, pairs: int) -> float:
    """Two-sided sign test: chance of a split at least this uneven if the tracer cost nothing."""
    extreme = max(losses, pairs - losses)
    tail = sum(math.comb(pairs, k) for k in range(extreme, pairs + 1)) / 2**pairs
    return min(1.0, 2 * tail)


def report(pairs: list[tuple[Run, Run]], args: argparse.Namespace) -> None:
    """Print every pair (without, with the tracer), then the paired comparison."""
    print(f"fio 4k randread O_DIRECT {args.ioengine} QD{args.iodepth}, {args.runtime} s runs, bindfs, "
          f"{os.cpu_count()} CPUs; tracer: BPF counter on {EVENT}, the mount's connection")
    print(f"{'pair':>4} {'IOPS off':>9} {'IOPS on':>9} {'ratio':>6} {'CPU us/IO off':>14} {'on':>6} "
          f"{'READ counted/fio IOs':>21}")
    for index, (off, on) in enumerate(pairs):
        print(f"{index:>4} {off.iops:>9.0f} {on.iops:>9.0f} {on.iops / off.iops:>6.3f} "
              f"{off.busy_cpu_s / off.ios * 1e6:>14.2f} {on.busy_cpu_s / on.ios * 1e6:>6.2f} "
              f"{f'{on.reads_counted}/{on.ios}':>21}")
    ratios = [on.iops / off.iops for off, on in pairs]
    losses = sum(ratio < 1 for ratio in ratios)
    cpu_deltas = [(on.busy_cpu_s / on.ios - off.busy_cpu_s / off.ios) * 1e6 for off, on in pairs]
    print(f"median IOPS: without tracer {statistics.median(off.iops for off, _ in pairs):.0f}, "
          f"with {statistics.median(on.iops for _, on in pairs):.0f}")
    print(f"IOPS ratio on/off per pair: median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}..{max(ratios):.3f}; traced run slower in {losses}/{len(ratios)} pairs "
          f"(sign test p={_sign_test_p(losses, len(ratios)):.2f})")
    print(f"busy CPU per request, on minus off, per pair: median {statistics.median(cpu_deltas):+.2f} us, "
          f"range {min(cpu_deltas):+.2f}..{max(cpu_deltas):+.2f} us")
    exact = all(on.reads_counted == on.ios for _, on in pairs)
    print(f"tracer READ count == fio I/O count in every traced run: {exact}")
    runs = sum(on.program["run_cnt"] for _, on in pairs)
    nanoseconds = sum(on.program["run_time_ns"] for _, on in pairs)
    misses = sum(on.program["recursion_misses"] for _, on in pairs)
    print(f"counting program: {runs} runs (every FUSE request on the machine), "
          f"{nanoseconds / max(runs, 1):.0f} ns per run, {misses} recursion misses; "
          f"at 300k requests/s that is {nanoseconds / max(runs, 1) * 300e3 / 1e9:.1%} of one CPU, "
          "plus the tracepoint's own record building, not timed here")


def main(argv: list[str] | None = None) -> int:
    """Run the paired comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="pairs of runs (default 10)")
    parser.add_argument("--runtime", type=int, default=3, help="seconds per fio run (default 3)")
    parser.add_argument("--iodepth", type=int, default=32, help="fio iodepth (default 32)")
    parser.add_argument("--ioengine", default="libaio", choices=["libaio", "io_uring", "psync"])
    parser.add_argument("--size-mib", type=int, default=64, help="data file size (default 64)")
    args = parser.parse_args(argv)
    reason = tracing_unavailable_reason()
    missing = [tool for tool in ("bindfs", "fio") if shutil.which(tool) is None]
    if reason or missing:
        print(f"cannot run: {reason or 'missing ' + ', '.join(missing)}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="fusebench-tracing-"))
    try:
        source = work / "source"
        source.mkdir()
        _prefill(source / "data", args.size_mib << 20)
        with open_target(BINDFS, source, work / "work") as mounted:
            data = mounted.path / "data"
            run_fio(data, args, 1, None)  # warm-up
            pairs = []
            for pair in range(args.pairs):
                # alternate which variant runs first, so drift hits both alike
                first_traced = pair % 2 == 1
                first = run_fio(data, args, args.runtime, mounted.connection if first_traced else None)
                second = run_fio(data, args, args.runtime, None if first_traced else mounted.connection)
                pairs.append((second, first) if first_traced else (first, second))
    finally:
        shutil.rmtree(work)
    report(pairs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
