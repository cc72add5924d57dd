"""HTML report: one self-contained file (inline CSS and SVG, no scripts, no network), prints well."""

from __future__ import annotations

from itertools import groupby

import jinja2
import numpy as np
import pandas as pd

from bench.analysis import (
    CPU_PARTS,
    SECONDARY_METRICS,
    Analysis,
    count_by_kind,
    environment,
    fd_config_label,
    in_order,
)
from bench.analysis.compare import COMPARED_METRICS, PRIMARY, Comparison
from bench.analysis.load import ENVIRONMENT_BLOCK
from bench.analysis.statistics import EQUIVALENT, FASTER, SLOWER, UNDECIDED
from bench.report import charts
from bench.report.fdrows import (
    FD_QUANTITY_LABELS,
    fd_sentences,
    fd_view_notes,
    format_bytes,
    has,
)
from bench.report.rows import (
    SUMMARY_HEADER,
    auto_line,
    change_rows,
    comparison_legend,
    comparison_summary_rows,
    environment_line,
    format_number,
    headline_rows,
    marked,
    method_lines,
    note_lines,
    only_lines,
    per_op_rows,
    sweep_tables,
    target_facts_line,
    verdict_lines,
)

TEMPLATES = jinja2.Environment(  # the report package's templates, for every HTML page
    loader=jinja2.PackageLoader("bench.report", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
FD_COLUMNS = ("status", "release", "clients", "open_files", "opened", "failed", "errno", "daemon_fds_delta",
              "client_fds_delta", "visible_fds", "file_nr_delta", "hidden_files", "backing_file_objects", "kernel_listed",
              "open_p50_us", "open_p99_us", "opens_per_s", "file_objects", "dentry_objects", "fuse_inode_objects",
              "backing_inode_objects", "slab_bytes", "slab_bytes_per_file", "kernel_bytes_per_file", "meminfo_slab_kib",
              "meminfo_sunreclaim_kib", "file_nr_held", "file_max", "daemon_rss_delta_kib", "close_s", "idle_ids", "idle_hidden_files",
              "idle_backing_file_objects", "idle_slab_bytes", "closed_ids", "release_s", "returned_to_baseline")


# How the headline colours a verdict (undecided and no comparison stay plain).
VERDICT_CLASSES = {FASTER: "better", SLOWER: "worse", EQUIVALENT: "same", UNDECIDED: "", "": ""}


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return "" if pd.isna(value) else format_number(float(value))


def _environment(analysis: Analysis) -> list[tuple[str, str]]:
    manifest = analysis.results.manifest
    env = environment(analysis.results)
    host = manifest.host if manifest else {}
    pairs = [("scenario", env["scenario"]), ("results folder", str(analysis.results.path)),
             ("run status", manifest.status if manifest else ""), ("started", env["started"]), ("ended", env["ended"]),
             ("seed", env["seed"]), ("kernel", env["kernel"]), ("kernel build", str(host.get("kernel_build", ""))),
             ("CPU", env["cpu"]), ("memory", env["memory"]), ("fio", env["fio"]), ("fusebench", env["tool"]),
             ("python", str(host.get("python", "")))]
    pairs += [(key, env.get(key, "")) for key in ENVIRONMENT_BLOCK]
    pairs += [(f"target {name}", target_facts_line(facts)) for name, facts in (manifest.targets if manifest else {}).items()]
    return [(key, value) for key, value in pairs if value]


def _fd_table(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    frame = analysis.results.fd_pressure
    if frame is None or frame.empty:
        return [], []
    columns = [c for c in FD_COLUMNS if has(frame, c)]  # older folders lack some
    policy = frame["fd_policy"] if "fd_policy" in frame else [None] * len(frame)
    labels = [fd_config_label(t, p) for t, p in zip(frame["target"], policy)]
    rows = [[label, *(_cell(v) for v in values)] for label, values in zip(labels, frame[columns].itertuples(index=False))]
    return ["configuration", *columns], rows


def _fd_memory_rows(analysis: Analysis) -> list[list[str]]:
    """Per configuration and quantity: the slope per 1,000 files opened, its interval, intercept, r2, points."""
    rows = []
    for row in analysis.fd_memory.itertuples():
        bytes_ = row.unit == "bytes"
        show = format_bytes if bytes_ else (lambda v: format_number(v) if pd.notna(v) else "")
        interval = f"[{show(row.slope_low)}, {show(row.slope_high)}]" if pd.notna(row.slope_low) else ""
        rows.append([row.config, FD_QUANTITY_LABELS.get(row.quantity, row.quantity), show(row.slope_per_1000), interval,
                     show(row.intercept), "" if pd.isna(row.r2) else f"{row.r2:.3f}", str(row.n)])
    return rows


def _secondary_table(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    """Median [CI] of each secondary metric, one row per cell x target, metrics that have data only."""
    frame = analysis.secondary
    if frame.empty:
        return [], []
    text = frame.assign(text=[f"{format_number(m)} [{format_number(lo)}, {format_number(hi)}]" if n > 1 else format_number(m)
                              for m, lo, hi, n in zip(frame["median"], frame["ci_low"], frame["ci_high"], frame["n"])])
    wide = text.pivot(index=["cell", "target"], columns="metric", values="text").reset_index()
    metrics = [m for m in SECONDARY_METRICS if m in wide]
    wide = in_order(wide, analysis.results.cells, analysis.results.targets).fillna("")
    rows = [[f"{cell} / {target}", *values] for cell, target, *values in wide[["cell", "target", *metrics]].itertuples(index=False)]
    return [m.replace("_", " ") for m in metrics], rows


def _headline_groups(headline: list) -> list[dict]:
    """The headline rows by cell, each group knowing whether it opens its section."""
    groups, section = [], None
    for cell, rows in groupby(headline, key=lambda r: r.cell):
        rows = list(rows)
        groups.append({"cell": cell, "rows": rows, "section": rows[0].section,
                       "section_first": rows[0].section != section})
        section = rows[0].section
    return groups


LATENCY_COLUMNS = (50.0, 90.0, 99.0, 99.9, 99.99)


def _latency_table(analysis: Analysis) -> list[list[str]]:
    """Per cell x target x direction: summed-bin clat percentiles (us) and the I/Os behind them."""
    frame = analysis.latency[analysis.latency["percentile"].isin(LATENCY_COLUMNS)]
    if frame.empty:
        return []
    wide = frame.pivot_table(index=["cell", "target", "direction", "ios"], columns="percentile",
                             values="latency_us", sort=False)
    return [[f"{cell} / {target}", direction, *(format_number(v) for v in values), f"{int(ios):,}"]
            for (cell, target, direction, ios), values in zip(wide.index, wide[list(LATENCY_COLUMNS)].to_numpy())]


def render_report(analysis: Analysis) -> str:
    """The whole HTML report."""
    headline = headline_rows(analysis)
    latency_cells = analysis.latency["cell"].nunique() if not analysis.latency.empty else 0
    fd_header, fd_rows = _fd_table(analysis)
    other_header, other_rows = _secondary_table(analysis)
    cells = len(analysis.results.cells)
    measured = analysis.summary.loc[analysis.summary["n"] > 0, "cell"].nunique()
    return TEMPLATES.get_template("report.html.j2").render(
        name=analysis.results.path.name,
        env_line=environment_line(environment(analysis.results)),
        status=analysis.results.manifest.status if analysis.results.manifest else "",
        baseline=analysis.baseline,
        targets_described=analysis.results.targets_described,
        auto=auto_line(analysis),
        verdict_class=VERDICT_CLASSES,
        mark=marked,
        plain=analysis.plain,
        findings=analysis.findings,
        finding_counts=count_by_kind(analysis.findings),
        headline_groups=_headline_groups(headline),
        verdicts=verdict_lines(analysis),
        per_op_rows=per_op_rows(analysis),
        method=method_lines(analysis),
        charts={
            "relative": charts.relative_throughput(analysis),
            "absolute": charts.absolute_figures(analysis),
            "sweeps": charts.sweep_curves(analysis),
            "latency": charts.latency_curves(analysis),
            "cpu": charts.cpu_per_gib(analysis),
            "timeseries": charts.time_series(analysis),
            "fd": charts.fd_pressure(analysis.fd_steps),
            "fd_views": charts.fd_views(analysis.fd_steps),
        },
        latency_cap=f" First {charts.MAX_PANELS} of {latency_cells} workloads shown." if latency_cells > charts.MAX_PANELS else "",
        absolute_cap=f" First {charts.MAX_PANELS} of {measured} workloads shown." if measured > charts.MAX_PANELS else "",
        sweep_tables=(sweeps := sweep_tables(analysis)),
        sweep_cap=f" First {charts.MAX_PANELS} of {len(sweeps)} curves shown." if len(sweeps) > charts.MAX_PANELS else "",
        fd_views_cap=(f" First {charts.MAX_PANELS // 2} of {configs} configurations shown."
                      if (configs := analysis.fd_steps["config"].nunique()) > charts.MAX_PANELS // 2 else ""),
        timeseries_cap=f" First {charts.MAX_PANELS // 2} of {cells} workloads shown." if cells > charts.MAX_PANELS // 2 else "",
        max_points=charts.MAX_POINTS,
        disk_rows=[[f"{row.cell} / {row.target}", _cell(row.fio_mib), _cell(row.dev_read_mib), _cell(row.dev_write_mib),
                    "" if pd.isna(row.device_share) else f"{row.device_share:.0%}"] for row in analysis.disk.itertuples()],
        cpu_rows=[{"label": f"{row.cell} / {row.target}",
                   "cells": [_cell(getattr(row, f"{part}_per_gib")) for part in CPU_PARTS]
                   + [_cell(row.total_s_per_gib), _cell(row.total_s_per_kio)]}
                  for row in analysis.cpu.itertuples()],
        request_rows=[{"label": f"{row.cell} / {row.target}", "type": row.target_type,
                       "cells": [_cell(row.fuse_read_requests), _cell(row.fuse_write_requests), _cell(row.fuse_other_requests)]}
                      for row in analysis.requests.itertuples()],
        fd_limit_rows=[{key: _cell(value) for key, value in row.items()} for row in analysis.fd_limits.to_dict("records")],
        latency_header=[f"p{p:g}" for p in LATENCY_COLUMNS],
        latency_rows=_latency_table(analysis),
        other_header=other_header,
        other_rows=other_rows,
        fd_header=fd_header,
        fd_rows=fd_rows,
        fd_sentences=fd_sentences(analysis),
        fd_notes=fd_view_notes(analysis.fd_steps),
        fd_memory_rows=_fd_memory_rows(analysis),
        environment=_environment(analysis),
    )


def _metric_tables(comparison: Comparison, rows: list) -> list[dict]:
    """Per metric: one row per cell x target, the base folder's median and each folder's change."""
    tables: dict[str, dict] = {}
    for row in rows:
        table = tables.setdefault(row.metric, {"key": row.metric, "label": row.label, "pairs": {}})
        pair = table["pairs"].setdefault((row.cell, row.target), {"cell": row.cell, "target": row.target,
                                                                 "unit": row.unit, "base": row.base, "rows": {}})
        pair["rows"][row.folder] = row
    return [dict(table, pairs=list(table["pairs"].values())) for table in tables.values()]


def render_comparison(comparison: Comparison) -> str:
    """Every other folder relative to the base as HTML; changes coloured only when decided."""
    names, analyses = comparison.names, [comparison.base, *comparison.others]
    rows = change_rows(comparison)
    return TEMPLATES.get_template("compare.html.j2").render(
        names=names,
        environments=[(name, environment_line(environment(a.results))) for name, a in zip(names, analyses)],
        differences=comparison.differences,
        summary_header=SUMMARY_HEADER,
        summary_rows=comparison_summary_rows(comparison),
        metrics=_metric_tables(comparison, rows),
        relative=[row for row in rows if row.rel_change],
        baseline=comparison.base.baseline,
        legend=comparison_legend(comparison),
        chart=charts.comparison_changes(comparison),
        primary_label=COMPARED_METRICS[PRIMARY].label,
        only=only_lines(comparison),
        notes=note_lines(comparison),
        warnings=[f"{name}: {f.message}" for name, a in zip(names, analyses) for f in a.findings],
    )
