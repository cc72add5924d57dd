"""What counting FUSE requests with bench.tracing costs: fio with and without the tracer.

Runs fio 4k random reads with O_DIRECT through a bindfs mount in a fresh temporary
directory, alternating runs without and with a RequestTracer on the mount's connection
(the order flips every repetition so drift hits both alike). Prints IOPS both ways, their
ratio, and the whole machine's busy CPU time per request (a finer signal than IOPS: the
tracer's work is kernel CPU time on the request path). Needs root, bindfs and fio.

    .venv/bin/python benchmarks/tracing_overhead.py [--reps 5] [--runtime 5] [--iodepth 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.tracing import EVENT, RequestTracer, connection_of, tracing_unavailable_reason  # noqa: E402


def _mounted(mountpoint: Path) -> bool:
    """Whether mountpoint is in the mount table (read without touching the FUSE mount)."""
    escaped = str(mountpoint).replace(" ", "\\040")
    return any(line.split()[1] == escaped for line in Path("/proc/self/mounts").read_text().splitlines())


@contextmanager
def bindfs_mount(source: Path, mountpoint: Path, timeout: float = 10.0) -> Iterator[int]:
    """Mount source on mountpoint with `bindfs -f`; yield the connection; always unmount.

    Unmounts with fusermount3 -u, then umount -l if that fails, and ends only the bindfs
    process it started.
    """
    source, mountpoint = source.resolve(), mountpoint.resolve()
    daemon = subprocess.Popen(
        ["bindfs", "-f", str(source), str(mountpoint)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _mounted(mountpoint):
            if daemon.poll() is not None:
                raise RuntimeError(f"bindfs exited with {daemon.returncode}: {daemon.stderr.read().strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bindfs did not mount {mountpoint} within {timeout} s")
            time.sleep(0.02)
        yield connection_of(mountpoint)
    finally:
        if _mounted(mountpoint):
            if subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
        try:
            daemon.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        daemon.stderr.close()


@dataclass
class Run:
    """One fio run: IOPS, requests completed, busy CPU seconds of the whole machine, tracer counts."""

    traced: bool
    iops: float
    ios: int
    busy_cpu_s: float
    counts: dict[str, int] | None


def _busy_cpu_s() -> float:
    """CPU seconds spent not idle, summed over all CPUs, since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - times.iowait


def run_fio(data: Path, args: argparse.Namespace, tracer_connection: int | None) -> Run:
    """One fio run over data, counting requests with a tracer when given a connection."""
    argv = [
        "fio", "--name=randread", f"--filename={data}", "--rw=randread", "--bs=4k", "--direct=1",
        f"--ioengine={args.ioengine}", f"--iodepth={args.iodepth}", f"--runtime={args.runtime}",
        "--time_based", "--output-format=json",
    ]
    tracer = RequestTracer(tracer_connection) if tracer_connection is not None else None
    before = _busy_cpu_s()
    with tracer or nullcontext():
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    busy = _busy_cpu_s() - before
    if result.returncode:
        raise RuntimeError(f"fio failed ({result.returncode}): {result.stderr.strip()}")
    report, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{"):])
    read = report["jobs"][0]["read"]
    counts = tracer.counts() if tracer else None
    return Run(tracer is not None, read["iops"], read["total_ios"], busy, counts)


def _prefill(path: Path, size: int) -> None:
    """Write size bytes of random data, so reads hit real blocks."""
    chunk = 1 << 20
    with path.open("wb") as out:
        for _ in range(size // chunk):
            out.write(os.urandom(chunk))


def main(argv: list[str] | None = None) -> int:
    """Run the interleaved comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument("--runtime", type=int, default=5, help="seconds per fio run (default 5)")
    parser.add_argument("--iodepth", type=int, default=32, help="fio iodepth (default 32)")
    parser.add_argument("--ioengine", default="libaio", choices=["libaio", "io_uring", "psync"])
    parser.add_argument("--size-mib", type=int, default=64, help="data file size (default 64)")
    args = parser.parse_args(argv)
    reason = tracing_unavailable_reason()
    missing = [tool for tool in ("bindfs", "fio", "fusermount3") if shutil.which(tool) is None]
    if reason or missing:
        print(f"cannot run: {reason or 'missing ' + ', '.join(missing)}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="fusebench-tracing-"))
    try:
        (work / "src").mkdir()
        (work / "mnt").mkdir()
        _prefill(work / "src" / "data", args.size_mib << 20)
        with bindfs_mount(work / "src", work / "mnt") as connection:
            data = work / "mnt" / "data"
            run_fio(data, argparse.Namespace(**{**vars(args), "runtime": 1}), None)  # warm-up
            runs: list[Run] = []
            for rep in range(args.reps):
                for traced in (False, True) if rep % 2 == 0 else (True, False):
                    runs.append(run_fio(data, args, connection if traced else None))
    finally:
        shutil.rmtree(work)

    print(f"fio 4k randread O_DIRECT {args.ioengine} QD{args.iodepth}, {args.runtime} s runs, "
          f"bindfs, {os.cpu_count()} CPUs; tracer: BPF counter on {EVENT} for the mount's connection")
    print(f"{'rep':>3} {'tracer':>6} {'IOPS':>10} {'busy CPU us/IO':>15} {'READ counted/fio IOs':>21}")
    for index, run in enumerate(runs):
        counted = f"{run.counts['READ']}/{run.ios}" if run.counts else ""
        print(f"{index // 2:>3} {'on' if run.traced else 'off':>6} {run.iops:>10.0f} "
              f"{run.busy_cpu_s / run.ios * 1e6:>15.2f} {counted:>21}")
    off = [run for run in runs if not run.traced]
    on = [run for run in runs if run.traced]
    iops_off = statistics.median(run.iops for run in off)
    iops_on = statistics.median(run.iops for run in on)
    cpu_off = statistics.median(run.busy_cpu_s / run.ios for run in off) * 1e6
    cpu_on = statistics.median(run.busy_cpu_s / run.ios for run in on) * 1e6
    ratios = sorted(b.iops / a.iops for a, b in zip(off, on))
    print(f"median IOPS without tracer {iops_off:.0f}, with tracer {iops_on:.0f}, "
          f"ratio on/off {iops_on / iops_off:.3f} (per-pair ratios {ratios[0]:.3f}..{ratios[-1]:.3f})")
    print(f"median busy CPU per request: without {cpu_off:.2f} us, with {cpu_on:.2f} us, "
          f"difference {cpu_on - cpu_off:+.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
