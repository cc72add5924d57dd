"""How big the HTML report of a folder with 100 over-time logs is (target: under 5 MB).

    .venv/bin/python benchmarks/report_size.py [--points N] [--keep DIR]

Builds report_perf.py's synthetic folder (25 cells x 4 targets x 10 repetitions = 1,000 runs),
then gives each cell's representative run on each target (100 runs) fio's logs as a 2-job run
writes them: bandwidth, IOPS and three latencies, `--points` windows each (600 by default: a
10-minute run at `log_interval: auto`), with a ramp and a stall. Prints the HTML's size and
time without the logs and with them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report_perf import build  # noqa: E402

from bench import analysis, report  # noqa: E402
from bench.analysis.timeline import representative_runs  # noqa: E402
from bench.fio_logs import KINDS  # noqa: E402
from bench.results import ResultsWriter  # noqa: E402

SIZE_LIMIT_MB = 5.0
JOBS = 2
INTERVAL_MS = 1000


def write_logs(folder: Path, points: int) -> int:
    """fio's logs for every representative run; how many runs got them."""
    rng = np.random.default_rng(1)
    writer = ResultsWriter.reopen(folder)
    picked = representative_runs(analysis.load(folder).runs)
    t = np.arange(1, points + 1)
    shape = np.minimum(1.0, t / 10) * np.where((t > points // 2) & (t <= points // 2 + 5), 0.1, 1.0)  # ramp, stall
    base = {"bw": 1024.0 * 1000, "iops": 256_000.0, "lat": 40_000.0, "clat": 38_000.0, "slat": 2_000.0}
    for run in picked.itertuples():
        prefix = writer.logs_prefix(run.run_id, "fio")
        for kind in KINDS:
            for job in range(1, JOBS + 1):
                values = base[kind] / JOBS * (shape if kind in ("bw", "iops") else 1 / shape)
                values = values * rng.normal(1, 0.03, points)
                lines = [f"{step * INTERVAL_MS + job}, {round(value)}, 0, 0, 0\n" for step, value in zip(t, values)]
                prefix.with_name(f"{prefix.name}_{kind}.{job}.log").write_text("".join(lines))
    return len(picked)


def html_report(folder: Path, out: Path) -> tuple[float, float]:
    """The HTML report's size (MB) and how long it took (s)."""
    start = time.perf_counter()
    page = report.write_report(folder, out, "html")
    return page.stat().st_size / 1e6, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=600, help="windows per log (default 600)")
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fusebench-size-") as tmp:
        folder = (args.keep or Path(tmp)) / "perf-synthetic"
        build(folder)
        size, elapsed = html_report(folder, Path(tmp) / "without.html")
        print(f"{'without logs':<30} {size:6.2f} MB  {elapsed:6.2f} s")
        logged = write_logs(folder, args.points)
        files = sorted((folder / "fio_logs").iterdir())
        raw = sum(path.stat().st_size for path in files) / 1e6
        print(f"{logged} runs with logs: {len(files)} files of {args.points} windows, {raw:.1f} MB")
        size, elapsed = html_report(folder, Path(tmp) / "with.html")
        print(f"{'with logs':<30} {size:6.2f} MB  {elapsed:6.2f} s")
        verdict = "OK" if size < SIZE_LIMIT_MB else "TOO BIG"
        print(f"target: html under {SIZE_LIMIT_MB:g} MB -> {verdict}")
        return 0 if size < SIZE_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
