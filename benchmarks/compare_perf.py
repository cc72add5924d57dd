"""How long `fusebench compare` takes on five big results folders (target: under 10 s).

    .venv/bin/python benchmarks/compare_perf.py

Builds five synthetic folders of 1,000 runs each (report_perf.py's folder, five draws), then
times `write_comparison` of four against the first in every format, and prints the figures.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report_perf import build  # noqa: E402

from bench import report  # noqa: E402

FOLDERS = 5
TIME_LIMIT_S = 10.0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fusebench-compare-") as tmp:
        folders = [Path(tmp) / f"draw{i}" for i in range(FOLDERS)]
        start = time.perf_counter()
        for seed, folder in enumerate(folders):
            build(folder, seed)
        print(f"built {FOLDERS} folders of 1,000 runs in {time.perf_counter() - start:.1f} s")
        slowest = 0.0
        for fmt, chosen in report.FORMATS.items():
            start = time.perf_counter()
            out = report.write_comparison(folders[0], folders[1:], Path(tmp) / f"compare.{chosen.extension}", fmt)
            elapsed = time.perf_counter() - start
            slowest = max(slowest, elapsed)
            print(f"compare {FOLDERS} folders, {fmt:<9} {elapsed:6.2f} s   {out.stat().st_size / 1e6:.2f} MB")
        verdict = "OK" if slowest < TIME_LIMIT_S else "TOO SLOW"
        print(f"target: every format under {TIME_LIMIT_S:.0f} s -> {verdict}")
        return 0 if slowest < TIME_LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
