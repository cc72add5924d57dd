"""What the harness costs the thing it measures: perf.yaml's 4k random-read cells (QD1 and
QD32, O_DIRECT) through the built-in plain FUSE server with the monitor off, at 10 Hz and at
100 Hz, each with the request tracer off and on, interleaved in one run (the order of the six
configurations rotates every repetition, so drift hits all alike). Prints each
configuration's median IOPS and its speed against monitor-off/tracer-off as a ratio of
geometric means with a 95% Welch interval. Goal: 10 Hz with the tracer on within 1% of off.
Where the tracer cannot run, the tracer-on configurations are left out (and said so).
Needs root and fio.

    .venv/bin/python benchmarks/harness_overhead.py [--repeat 6] [--runtime 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.analysis.statistics import ratio_interval  # noqa: E402
from bench.datafiles import prepare_files  # noqa: E402
from bench.fio import FioProcess, build_argv  # noqa: E402
from bench.host import Host  # noqa: E402
from bench.monitor import Monitor  # noqa: E402
from bench.scenario import parse_scenario  # noqa: E402
from bench.tracing import tracing_unavailable_reason  # noqa: E402

CONFIGS = [(hz, tracer) for hz in (0, 10, 100) for tracer in (False, True)]
SCENARIO = """\
name: harness
targets: [{{name: fuse, type: fuse, threads: 2, max_background: 64}}]
workloads:
  - {{name: randread-4k-qd1, rw: randread, bs: 4k, size: 256M, runtime: {runtime}s, direct: true}}
  - {{name: randread-4k-qd32, rw: randread, bs: 4k, size: 256M, runtime: {runtime}s, direct: true, ioengine: libaio,
     iodepth: 32}}
"""


def measure(host: Host, mounted, argv: list[str], hz: int, traced: bool) -> float:
    """IOPS of one fio run with the monitor at `hz` (0: off) and the tracer on or off."""
    tracer = host.tracer(mounted.connection) if traced else None
    monitor = Monitor(hz=hz, daemon_pid=mounted.daemon_pid) if hz else None
    process = FioProcess(argv)
    try:
        if monitor:
            monitor.start(process.pid)
        result = process.wait(120)
    finally:
        process.stop()
        if monitor:
            monitor.stop()
        if tracer:
            tracer.close()
    return result.read.iops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--runtime", type=float, default=3)
    args = parser.parse_args()
    reason = tracing_unavailable_reason()
    configs = [config for config in CONFIGS if not (reason and config[1])]
    if reason:
        print(f"the tracer cannot run here ({reason}): measuring the monitor only")
    scenario = parse_scenario(SCENARIO.format(runtime=args.runtime))
    host = Host()
    iops: dict[tuple[str, int, bool], list[float]] = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        work = Path(tmp)
        source = work / "source"
        source.mkdir()
        cells = [(cell, prepare_files(cell, source)) for cell in scenario.cells()]
        with host.mount(scenario.targets[0], source, work) as mounted:
            for repetition in range(args.repeat):
                shift = repetition % len(configs)
                for cell, files in cells:
                    argv = build_argv(cell, [Path(mounted.path) / rel for rel in files], work / "fio.json")
                    for hz, traced in configs[shift:] + configs[:shift]:
                        iops.setdefault((cell.name, hz, traced), []).append(measure(host, mounted, argv, hz, traced))
                print(f"repetition {repetition + 1}/{args.repeat} done", flush=True)
    print(f"\n4k random reads, O_DIRECT, through the built-in plain server; {args.repeat} runs each, "
          f"{args.runtime:g} s")
    print(f"{'cell':18} {'monitor':>8} {'tracer':>6} {'median IOPS':>12}  speed vs off [95% interval]")
    for cell, _ in cells:
        base = iops[(cell.name, 0, False)]
        for hz, traced in configs:
            values = iops[(cell.name, hz, traced)]
            ratio = ratio_interval(values, base)
            print(f"{cell.name:18} {(str(hz) + ' Hz') if hz else 'off':>8} {'on' if traced else 'off':>6} "
                  f"{statistics.median(values):12.0f}  {ratio.ratio:.4f} [{ratio.low:.4f}, {ratio.high:.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
