"""Quick side-by-side check of the built-in FUSE server against native: the workloads of
scenarios/perf.yaml (4k random read O_DIRECT at QD1 psync and QD32 libaio, 1M sequential read
O_DIRECT, 1M sequential write, 4k random write O_DIRECT) on native, plain and passthrough mounts
of one tmp dir. Every target stays mounted for the whole batch; runs are interleaved (rep ->
workload -> target, target order rotated each rep) and caches are dropped before each run.
Prints, per workload and target, the median IOPS / MiB/s and the ratio to native of the same
rep (median and min..max over the reps), plus the non-data requests the daemon received per
run (from its stats file). Root only.

Usage: python benchmarks/fusefs_quick.py [--runtime S] [--size MiB] [--repeat N]
           [--workloads a,b] [--target NAME=SERVER-ARGS ...] [--only NAME,...]
  e.g. --target "plain-32t=--mode plain --threads 32 --max-background 64"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fusefs import device  # noqa: E402

# name -> (file, fio args); the same workloads as scenarios/perf.yaml.
WORKLOADS = {
    "randread-4k-qd1": ("data", ["--rw=randread", "--bs=4k", "--ioengine=psync", "--direct=1"]),
    "randread-4k-qd32": ("data", ["--rw=randread", "--bs=4k", "--ioengine=libaio", "--iodepth=32",
                                  "--direct=1"]),
    "seqread-1m": ("data", ["--rw=read", "--bs=1M", "--ioengine=psync", "--direct=1"]),
    "seqwrite-1m": ("wdata", ["--rw=write", "--bs=1M", "--ioengine=psync", "--direct=0"]),
    "randwrite-4k": ("data", ["--rw=randwrite", "--bs=4k", "--ioengine=psync", "--direct=1"]),
}
# Defaults of the server are what is measured: keep these argument lists minimal.
TARGETS = {
    "native": None,
    "plain": ["--mode", "plain"],
    "passthrough": ["--mode", "passthrough"],
}
DATA_OPS = {"READ", "WRITE"}


def drop_caches() -> None:
    """Cold caches for every run (dirty pages written first)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def fio(path: Path, args: list[str], runtime: int, size: int) -> tuple[float, float]:
    """(IOPS, MiB/s) of one fio run, reads and writes summed."""
    # As bench.fio does: invalidate=0 (fadvise does not drop a passthrough file's backing cache,
    # so targets would differ in cache state) and time_based only for O_DIRECT runs (a cold
    # buffered run writes each byte once, with the runtime as a cap).
    timed = ["--time_based"] if "--direct=1" in args else []
    argv = ["fio", "--name=q", f"--filename={path}", f"--size={size}M", "--invalidate=0", *timed,
            f"--runtime={runtime}", "--output-format=json", *args]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    iops = job["read"]["iops"] + job["write"]["iops"]
    bw = (job["read"]["bw_bytes"] + job["write"]["bw_bytes"]) / 2**20
    return iops, bw


def read_requests(stats: Path) -> dict[str, int]:
    """The daemon's cumulative per-opcode counts (empty when not written yet)."""
    for _ in range(20):
        try:
            return json.loads(stats.read_text())["requests"]
        except (OSError, ValueError):
            time.sleep(0.05)
    return {}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):.2f}..{max(values):.2f})"


def main() -> int:
    """Run every workload on every target, interleaved, and print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--target", action="append", default=[], metavar="NAME=ARGS",
                    help="an extra built-in server target (NAME=server arguments)")
    ap.add_argument("--only", help="comma-separated targets to run (native is always run)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("fusefs_quick: needs root", file=sys.stderr)
        return 2
    targets = dict(TARGETS)
    for spec in a.target:
        name, _, args = spec.partition("=")
        targets[name] = shlex.split(args)
    if a.only:
        keep = {"native", *a.only.split(",")}
        targets = {k: v for k, v in targets.items() if k in keep}
    workloads = {k: WORKLOADS[k] for k in a.workloads.split(",")}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    extra: dict[tuple[str, str], list[dict[str, int]]] = {}
    load = []
    with tempfile.TemporaryDirectory(prefix="fusefs-quick-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in sorted({f for f, _ in workloads.values()}):
            subprocess.run(["fio", "--name=fill", f"--filename={source / name}", f"--size={a.size}M",
                            "--rw=write", "--bs=1M", "--direct=1", "--output-format=json"],
                           capture_output=True, check=True)
        procs: dict[str, subprocess.Popen] = {}
        mounts: dict[str, Path] = {}
        try:
            for target, args in targets.items():
                if args is None:
                    mounts[target] = source
                    continue
                mnt = Path(tmp) / f"mnt-{target}"
                mnt.mkdir()
                stats = Path(tmp) / f"stats-{target}.json"
                procs[target] = subprocess.Popen(
                    [sys.executable, "-m", "bench.fusefs", str(source), str(mnt), *args,
                     "--stats-file", str(stats), "--stats-interval", "0.05"], cwd=REPO)
                deadline = time.monotonic() + 10
                while not os.path.ismount(mnt):
                    if procs[target].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"target {target} did not mount")
                    time.sleep(0.05)
                mounts[target] = mnt
            order = list(targets)
            for rep in range(a.repeat):
                load.append(os.getloadavg()[0])
                for wname, (fname, wargs) in workloads.items():
                    for target in order:
                        stats = Path(tmp) / f"stats-{target}.json"
                        before = read_requests(stats) if target in procs else {}
                        drop_caches()
                        res = fio(mounts[target] / fname, wargs, a.runtime, a.size)
                        results.setdefault((wname, target), []).append(res)
                        if target in procs:
                            time.sleep(0.15)
                            after = read_requests(stats)
                            extra.setdefault((wname, target), []).append(
                                {k: v - before.get(k, 0) for k, v in after.items()
                                 if k not in DATA_OPS and v - before.get(k, 0)})
                order = order[1:] + order[:1]  # rotate: no target always runs first
                print(f"rep {rep + 1}/{a.repeat} done", file=sys.stderr, flush=True)
        finally:
            for target, proc in procs.items():
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                if os.path.ismount(mounts.get(target, "/nonexistent")):
                    device.unmount(str(mounts[target]))
    print(f"{a.repeat} interleaved reps, {a.runtime}s each, caches dropped before each run; "
          f"load average at rep start: {', '.join(f'{x:.1f}' for x in load)}")
    print(f"{'workload':18} {'target':14} {'IOPS':>9} {'MiB/s':>8}  ratio to native: median (min..max)")
    for wname in workloads:
        native = results[(wname, "native")]
        for target in targets:
            rows = results[(wname, target)]
            ratios = [r[0] / n[0] for r, n in zip(rows, native)]
            iops = statistics.median(r[0] for r in rows)
            bw = statistics.median(r[1] for r in rows)
            print(f"{wname:18} {target:14} {iops:9.0f} {bw:8.1f}  {spread(ratios)}")
    print("non-data requests per run (first rep, then last):")
    for (wname, target), runs in extra.items():
        if runs[0] or runs[-1]:
            print(f"  {wname:18} {target:14} {runs[0]}  {runs[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
