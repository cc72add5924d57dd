"""Quick side-by-side check of the built-in FUSE server against native, through fusebench's own
runner: the workloads of scenarios/perf.yaml (or some of them) on its native, plain and
passthrough targets plus any extra built-in targets, interleaved, caches dropped, into a
temporary results folder. Prints, per workload and target, the median IOPS and MiB/s, the
ratio to native of the same repetition (median and min..max over the repetitions), and the
non-data FUSE requests per run (median per opcode, from requests.csv). Root only.

Usage: python benchmarks/fusefs_quick.py [--runtime S] [--repeat N] [--workloads a,b]
           [--target YAML ...] [--only NAME,...] [--keep DIR]
  e.g. --target "{name: plain-32t, type: fuse, threads: 32, max_background: 64}"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.analysis.load import with_primary_metric  # noqa: E402
from bench.host import Host  # noqa: E402
from bench.results import ResultsFolder  # noqa: E402
from bench.runner import RunOptions, run  # noqa: E402

PERF = Path(__file__).resolve().parents[1] / "scenarios" / "perf.yaml"
DATA_OPS = {"READ", "WRITE"}


def scenario(args: argparse.Namespace) -> str:
    """perf.yaml with the asked changes, as YAML text."""
    data = yaml.safe_load(PERF.read_text())
    data.update(name="fusefs-quick", repeat=args.repeat)
    data["targets"] += [yaml.safe_load(extra) for extra in args.target]
    if args.only:
        keep = {"native", *args.only.split(",")}
        data["targets"] = [t for t in data["targets"] if t["name"] in keep]
    if args.workloads:
        wanted = args.workloads.split(",")
        data["workloads"] = [w for w in data["workloads"] if w["name"] in wanted]
    for workload in data["workloads"]:
        workload["runtime"] = f"{args.runtime}s"
    return yaml.safe_dump(data, sort_keys=False)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):.2f}..{max(values):.2f})"


def report(folder: ResultsFolder) -> None:
    """The per-repetition ratio table and the non-data requests of a finished folder."""
    runs = with_primary_metric(folder.runs())
    runs = runs[runs["status"] == "ok"]
    print(f"{'workload':18} {'target':14} {'IOPS':>9} {'MiB/s':>8}  ratio to native: median (min..max)")
    for cell, of_cell in runs.groupby("cell", sort=False):
        native = of_cell[of_cell["target_type"] == "native"].set_index("repetition")["value"]
        for target, rows in of_cell.groupby("target", sort=False):
            by_rep = rows.set_index("repetition")["value"]
            ratios = [by_rep[rep] / native[rep] for rep in by_rep.index if rep in native.index]
            iops = (rows["read_iops"].fillna(0) + rows["write_iops"].fillna(0)).median()
            bw = (rows["read_bw_mib_s"].fillna(0) + rows["write_bw_mib_s"].fillna(0)).median()
            print(f"{cell:18} {target:14} {iops:9.0f} {bw:8.1f}  {spread(ratios) if ratios else '-'}")
    requests = folder.requests()
    if requests is None:
        return
    other = requests[~requests["opcode"].isin(DATA_OPS)].merge(runs[["run_id", "cell", "target"]], on="run_id")
    print("non-data requests per run (median):")
    for (cell, target), rows in other.groupby(["cell", "target"], sort=False):
        per_opcode = rows.groupby("opcode", sort=False)["requests"].median()
        print(f"  {cell:18} {target:14} {({opcode: int(n) for opcode, n in per_opcode.items()})}")


def main() -> int:
    """Run the chosen perf.yaml workloads on every target, interleaved, and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=int, default=4, help="seconds per run (default 4)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--workloads", help="comma-separated workload names of perf.yaml (default: all)")
    ap.add_argument("--target", action="append", default=[], metavar="YAML",
                    help="an extra target, as a YAML flow mapping of scenario keys")
    ap.add_argument("--only", help="comma-separated targets to run (native is always run)")
    ap.add_argument("--keep", type=Path, help="write the results folder here and keep it")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("fusefs_quick: needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fusefs-quick-") as tmp:
        path = Path(tmp) / "fusefs-quick.yaml"
        path.write_text(scenario(args))
        out = args.keep or Path(tmp) / "results"
        status = run(RunOptions(path, out=out), Host())
        report(ResultsFolder(out))
    return status


if __name__ == "__main__":
    sys.exit(main())
