#!/usr/bin/env python3
"""How much CPU does the monitor's sampling thread cost while fio is busy?

Runs a CPU-bound fio job (4k random reads, two job processes) in a temporary directory
once per sampling rate and prints the sampler's own thread CPU time as a percent of one
CPU. Usage: python benchmarks/monitor_overhead.py [--runtime S] [--hz 10 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.monitor import Monitor  # noqa: E402


def measure(hz: float, runtime_s: int, directory: Path) -> dict:
    """Sample one busy fio run at `hz`; the sampler's CPU and what it saw."""
    fio = subprocess.Popen(
        ["fio", "--name=busy", f"--directory={directory}", "--size=64M", "--rw=randread", "--bs=4k",
         "--ioengine=psync", "--numjobs=2", "--time_based", f"--runtime={runtime_s}",
         "--output-format=json", f"--output={directory / 'fio.json'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    monitor = Monitor(hz=hz)
    monitor.start(fio.pid)
    if fio.wait() != 0:
        raise SystemExit(f"fio failed (exit {fio.returncode})")
    result = monitor.stop()
    elapsed = time.monotonic() - started
    summary = result.summary
    return {
        "hz": hz,
        "elapsed_s": elapsed,
        "samples": summary.samples,
        "sampler_cpu_s": summary.sampler_cpu_s,
        "sampler_cpu_pct": 100.0 * summary.sampler_cpu_s / elapsed,
        "per_sample_ms": 1000.0 * summary.sampler_cpu_s / max(summary.samples, 1),
        "fio_cpu_s": summary.fio_cpu_user_s + summary.fio_cpu_sys_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", type=int, default=5, help="seconds of fio per rate (default 5)")
    parser.add_argument("--hz", type=float, nargs="+", default=[10.0, 100.0])
    args = parser.parse_args()
    print(f"{'hz':>6} {'samples':>8} {'elapsed s':>10} {'sampler CPU s':>14} {'sampler CPU %':>14} "
          f"{'ms/sample':>10} {'fio CPU s':>10}")
    with tempfile.TemporaryDirectory(prefix="fusebench-monitor-") as tmp:
        for hz in args.hz:
            row = measure(hz, args.runtime, Path(tmp))
            print(f"{row['hz']:>6g} {row['samples']:>8} {row['elapsed_s']:>10.2f} {row['sampler_cpu_s']:>14.3f} "
                  f"{row['sampler_cpu_pct']:>13.2f}% {row['per_sample_ms']:>10.3f} {row['fio_cpu_s']:>10.2f}")


if __name__ == "__main__":
    main()
