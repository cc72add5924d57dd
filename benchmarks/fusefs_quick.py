"""Quick check of the built-in FUSE server against native: fio 4k random read O_DIRECT at QD1
and QD32 (libaio), 1M sequential read O_DIRECT and 4k random write O_DIRECT, on native, plain and
passthrough mounts of one tmp dir; prints IOPS/bandwidth and ratios to native. Root only.

Usage: python benchmarks/fusefs_quick.py [--runtime S] [--size MiB] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
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

WORKLOADS = {
    "randread-4k-qd1": ["--rw=randread", "--bs=4k", "--ioengine=psync", "--iodepth=1"],
    "randread-4k-qd32": ["--rw=randread", "--bs=4k", "--ioengine=libaio", "--iodepth=32"],
    "seqread-1m": ["--rw=read", "--bs=1M", "--ioengine=psync", "--iodepth=1"],
    "randwrite-4k-qd1": ["--rw=randwrite", "--bs=4k", "--ioengine=psync", "--iodepth=1"],
}
TARGETS = {
    "native": None,
    "plain": ["--mode", "plain"],
    "plain-16t": ["--mode", "plain", "--threads", "16"],  # deep queues need threads in flight
    "passthrough": ["--mode", "passthrough"],
}


def fio(path: Path, args: list[str], runtime: int, size: int) -> tuple[float, float]:
    """(IOPS, MiB/s) of one fio run, reads and writes summed."""
    argv = ["fio", "--name=q", f"--filename={path}", f"--size={size}M", "--direct=1",
            "--time_based", f"--runtime={runtime}", "--output-format=json", *args]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    iops = job["read"]["iops"] + job["write"]["iops"]
    bw = (job["read"]["bw_bytes"] + job["write"]["bw_bytes"]) / 2**20
    return iops, bw


def main() -> int:
    """Run every workload on every target, interleaved, and print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("fusefs_quick: needs root", file=sys.stderr)
        return 2
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fusefs-quick-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        data = source / "data"
        subprocess.run(["fio", "--name=fill", f"--filename={data}", f"--size={a.size}M", "--rw=write",
                        "--bs=1M", "--direct=1", "--output-format=json"], capture_output=True, check=True)
        for _ in range(a.repeat):
            for target, args in TARGETS.items():
                mnt = Path(tmp) / f"mnt-{target}"
                mnt.mkdir(exist_ok=True)
                proc = None
                if args is not None:
                    proc = subprocess.Popen([sys.executable, "-m", "bench.fusefs", str(source), str(mnt), *args],
                                            cwd=REPO)
                    while not os.path.ismount(mnt):
                        time.sleep(0.05)
                try:
                    base = source if args is None else mnt
                    for name, wargs in WORKLOADS.items():
                        results.setdefault((name, target), []).append(fio(base / "data", wargs, a.runtime, a.size))
                finally:
                    if proc is not None:
                        proc.send_signal(signal.SIGTERM)
                        if proc.wait(10) != 0 or os.path.ismount(mnt):
                            device.unmount(str(mnt))
    print(f"{'workload':20} {'target':12} {'IOPS':>10} {'MiB/s':>9} {'ratio':>6}")
    for name in WORKLOADS:
        native = statistics.median(r[0] for r in results[(name, "native")])
        for target in TARGETS:
            iops = statistics.median(r[0] for r in results[(name, target)])
            bw = statistics.median(r[1] for r in results[(name, target)])
            print(f"{name:20} {target:12} {iops:10.0f} {bw:9.1f} {iops / native:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
