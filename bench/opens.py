"""Open/close loops: one process opens and closes existing small files in turn, as fast as it
can, for a while: `python -m bench.opens DIR COUNT RUNTIME_S OUTPUT`.

Each open and each close is timed with the monotonic clock around the bare syscall (os.open
and os.close: about a microsecond of Python on top). The times are kept as histograms of 3
significant digits (a run makes hundreds of thousands of opens natively), written as JSON to
OUTPUT (kept in the results folder like fio's output) once the loop ends.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.percentile import percentiles
from bench.smallfiles import create_files, file_name
from bench.workspace import owned_dir

LOOP_FILES_DIR = "fusebench-opens"
LATENCIES = (50.0, 99.0, 99.9)


def files_dir(count: int) -> Path:
    """Where the `count` files of a loop live, relative to the source directory (shared by
    every loop over as many files)."""
    return Path(LOOP_FILES_DIR) / f"n{count}"


def prepare(source: Path, count: int) -> Path:
    """The loop's files under `source` (created once); their directory relative to `source`."""
    create_files(owned_dir(source, *files_dir(count).parts), count)
    return files_dir(count)


def client_argv(directory: Path, count: int, runtime_s: float, output: Path) -> list[str]:
    """How the runner starts the loop."""
    return [sys.executable, "-m", "bench.opens", str(directory), str(count), f"{runtime_s:g}", str(output)]


def client_env() -> dict[str, str]:
    """The loop's environment: where this checkout's `bench` is, installed or not."""
    return {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _bucket(ns: int) -> int:
    """`ns` rounded to 3 significant digits (a histogram of a few hundred buckets per decade)."""
    digits = len(str(ns))
    return ns if digits <= 3 else round(ns, 3 - digits)


@dataclass(frozen=True)
class OpensResult:
    """What one loop did: opens, its wall time, and open and close latency histograms (ns -> count)."""

    opens: int
    wall_s: float
    open_ns: dict[int, int]
    close_ns: dict[int, int]

    @property
    def opens_per_s(self) -> float:
        """Opens per second over the whole loop."""
        return self.opens / self.wall_s if self.wall_s > 0 else 0.0

    def open_us(self) -> list[float | None]:
        """Open latency at LATENCIES (p50, p99, p99.9), microseconds."""
        return [None if ns is None else ns / 1000 for ns in percentiles(self.open_ns, LATENCIES)]


def read_result(path: Path) -> OpensResult:
    """A loop's output file (OSError when unreadable, ValueError or KeyError when it is not one)."""
    data = json.loads(path.read_text())
    return OpensResult(int(data["opens"]), float(data["wall_s"]),
                       {int(ns): int(n) for ns, n in data["open_ns"].items()},
                       {int(ns): int(n) for ns, n in data["close_ns"].items()})


def main(directory: Path, count: int, runtime_s: float, output: Path) -> int:
    """Open and close the files of `directory` in turn for `runtime_s` seconds; write the result."""
    paths = [os.fsencode(directory / file_name(index)) for index in range(count)]
    open_ns: Counter[int] = Counter()
    close_ns: Counter[int] = Counter()
    clock, flags = time.perf_counter_ns, os.O_RDONLY | os.O_CLOEXEC
    started = clock()
    deadline = started + int(runtime_s * 1e9)
    opens = 0
    while True:
        for path in paths:
            t0 = clock()
            fd = os.open(path, flags)
            t1 = clock()
            os.close(fd)
            t2 = clock()
            open_ns[_bucket(t1 - t0)] += 1
            close_ns[_bucket(t2 - t1)] += 1
            opens += 1
            if t2 >= deadline:
                wall_s = (t2 - started) / 1e9
                output.write_text(json.dumps({"opens": opens, "wall_s": wall_s, "open_ns": open_ns,
                                              "close_ns": close_ns}))
                return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python -m bench.opens DIR COUNT RUNTIME_S OUTPUT")
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])))
