"""How long `write_report` takes on a big results folder (target: under 10 s for HTML).

    .venv/bin/python benchmarks/report_perf.py [--keep DIR]

Builds a synthetic folder: 25 cells x 4 targets x 10 repetitions = 1,000 runs, 100,000
monitor samples, a json+ file with latency bins per run and an fd-pressure sweep; then
times loading, analysis and each report format, and prints the figures and HTML size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench  # noqa: E402
from bench import analysis, report  # noqa: E402
from bench.records import (  # noqa: E402
    FdPressureRecord,
    FioFigures,
    Manifest,
    MonitorSummary,
    PlanEntry,
    RequestTotals,
    RunInfo,
    RunRecord,
    SampleRecord,
    WorkloadAsRun,
)
from bench.results import ResultsWriter  # noqa: E402

# Real fio 3.33 json+ outputs whose latency bins are replaced per run (the one parser reads them whole).
FIO_TEMPLATES = {direction: json.loads((Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fio" / name)
                                       .read_text()) for direction, name in (("read", "seq-read.json"),
                                                                             ("write", "seq-write.json"))}

TARGETS = [("native", "native"), ("fuse", "fuse"), ("passthrough", "passthrough"), ("hp", "external")]
SPEED = {"native": 1.0, "fuse": 0.45, "passthrough": 0.98, "hp": 0.97}
PATTERNS = [("read", "1M"), ("randread", "4k"), ("write", "1M"), ("randwrite", "4k"), ("randrw", "16k")]
REPEAT = 10
SAMPLES_PER_RUN = 100  # 50 instants x (fio, daemon)
TIME_LIMIT_S = 10.0


def scenario_yaml(cells: list[tuple[str, str, str]]) -> str:
    lines = ["name: perf-synthetic", f"repeat: {REPEAT}", "targets:"]
    lines += ["  - {name: native, type: native}", "  - {name: fuse, type: fuse}",
              "  - {name: passthrough, type: passthrough}",
              '  - {name: hp, type: external, command: [passthrough_hp, "{source}", "{mountpoint}"]}']
    lines.append("workloads:")
    lines += [f"  - {{name: {name}, rw: {rw}, bs: {bs}, size: 64M, runtime: 2s}}" for name, rw, bs in cells]
    lines += ["fd_pressure:", "  targets: [fuse, passthrough]", "  open_files: [10, 100, 1000, 4000, 10000, 50000]"]
    return "\n".join(lines) + "\n"


def fio_json(rng: np.random.Generator, direction: str, median_ns: float) -> str:
    values = np.unique(np.round(rng.lognormal(np.log(median_ns), 0.4, 60), -1).astype(int))
    bins = {str(v): int(c) for v, c in zip(values, rng.integers(1, 500, len(values)))}
    output = json.loads(json.dumps(FIO_TEMPLATES[direction]))
    output["jobs"][0][direction]["clat_ns"].update(N=sum(bins.values()), bins=bins)
    return json.dumps(output)


def build(folder: Path, seed: int = 0) -> None:
    """The synthetic folder, written through the package's own writer and record types (`seed`:
    another draw of the same figures)."""
    rng = np.random.default_rng(seed)
    writer = ResultsWriter.create(folder)
    cells = [(f"w{i:02d}-{rw}-{bs}", rw, bs) for i, (rw, bs) in enumerate(PATTERNS * 5)]
    plan = []
    t = np.arange(SAMPLES_PER_RUN // 2) * 0.04
    for rep in range(1, REPEAT + 1):
        for name, rw, bs in cells:
            for target, kind in TARGETS:
                run_id = f"{name}--{target}--r{rep}"
                plan.append(PlanEntry(run_id=run_id, cell=name, target=target, repetition=rep))
                value = 1000 * SPEED[target] * rng.normal(1, 0.03)
                direction = "write" if "write" in rw else "read"
                fuse = kind != "native"
                record = RunRecord(
                    info=RunInfo(run_id=run_id, workload=name, cell=name, sweep="{}", target=target, target_type=kind,
                                 repetition=rep, order=len(plan) - 1, status="ok"),
                    workload=WorkloadAsRun(rw=rw, bs=bs),
                    fio=FioFigures(**{f"{direction}_bw_mib_s": value, f"{direction}_iops": value * 256,
                                      f"{direction}_io_bytes": int(value * 2 * (1 << 20))}, fio_runtime_s=2.0),
                    monitor=MonitorSummary(fio_cpu_user_s=0.2, fio_cpu_sys_s=0.8, daemon_cpu_user_s=0.4 if fuse else None,
                                           daemon_cpu_sys_s=0.9 if fuse else None),
                    requests=RequestTotals(fuse_read_requests=5000 if kind == "fuse" else 0, fuse_other_requests=9,
                                           passthrough_engaged=True if kind == "passthrough" else None),
                )
                samples = [SampleRecord(run_id=run_id, t_s=float(at), role=role, cpu_pct=float(rng.uniform(10, 90)),
                                        num_fds=int(12 + rng.integers(0, 3)), rss_kib=int(20_000 + rng.integers(0, 500)))
                           for role in ("fio", "daemon") for at in t]
                writer.fio_output_path(run_id).write_text(fio_json(rng, direction, 40_000 / SPEED[target]))
                writer.append_run(record, samples)
    for target, kind, policy in (("fuse", "fuse", None), ("passthrough", "passthrough", "keep"),
                                 ("passthrough", "passthrough", "close")):
        for n in (10, 100, 1000, 4000, 10000, 50000):
            writer.append_fd_pressure(FdPressureRecord(
                target=target, target_type=kind, fd_policy=policy, daemon_nofile=4096, open_files=n,
                opened=min(n, 4090), failed=max(0, n - 4090), errno="EMFILE" if n > 4090 else None,
                daemon_fds_delta=min(n, 4090), hidden_files=n if policy == "close" else 0,
                backing_file_objects=n if kind == "passthrough" else 0, open_p50_us=20, open_p99_us=80,
                kernel_bytes_per_file=480, daemon_rss_delta_kib=n // 2, status="ok"))
    writer.write_scenario(scenario_yaml(cells))
    writer.write_manifest(Manifest(
        scenario="perf-synthetic", scenario_hash="0" * 16, seed=1, repeat=REPEAT, plan=plan,
        target_order=[[t for t, _ in TARGETS]] * REPEAT,
        host={"kernel": "6.18.0", "arch": "x86_64", "cpu_model": "synthetic", "cpu_cores": 2},
        fio_version="fio-3.33", tool_version=bench.__version__, workdir="/tmp", started_at="2026-11-25T00:00:00Z",
        status="complete", runs={p.run_id: "ok" for p in plan}))


def timed(label: str, func):
    start = time.perf_counter()
    result = func()
    print(f"{label:<28} {time.perf_counter() - start:7.2f} s")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fusebench-perf-") as tmp:
        folder = (args.keep or Path(tmp)) / "perf-synthetic"
        timed("build synthetic folder", lambda: build(folder))
        runs, samples = len(pd.read_csv(folder / "runs.csv")), len(pd.read_csv(folder / "samples.csv"))
        print(f"{runs} runs, {samples} samples")
        results = timed("load", lambda: analysis.load(folder))
        timed("analyse", lambda: analysis.analyse(results))
        start = time.perf_counter()
        out = report.write_report(folder, Path(tmp) / "report.html", "html")
        elapsed = time.perf_counter() - start
        print(f"{'write_report html (total)':<28} {elapsed:7.2f} s   {out.stat().st_size / 1e6:.2f} MB")
        for fmt in ("text", "markdown", "csv"):
            timed(f"write_report {fmt}", lambda: report.write_report(folder, Path(tmp) / f"report.{fmt}", fmt))
        verdict = "OK" if elapsed < TIME_LIMIT_S else "TOO SLOW"
        print(f"target: html under {TIME_LIMIT_S:.0f} s -> {verdict}")
        return 0 if elapsed < TIME_LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
