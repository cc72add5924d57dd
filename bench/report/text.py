"""Plain-text report: aligned tables at most 80 columns wide, to paste into a cover letter."""

from __future__ import annotations

import textwrap

import pandas as pd

from bench.analysis import CPU_PARTS, Analysis, count_by_kind, environment
from bench.analysis.load import ENVIRONMENT_BLOCK
from bench.report.rows import (
    auto_line,
    comparison_legend,
    comparison_rows,
    environment_differences,
    environment_line,
    format_number,
    headline_rows,
    marked,
    method_lines,
    per_op_rows,
    verdict_lines,
)

WIDTH = 80
# target, n, median, interval (coverage), % baseline, vs plain
_HEAD = "{:<16} {:>3} {:>8}  {:<21} {:<7} {}"
_CPU = "{:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}"
_CMP = "{:<26} {:>8} {:>8}  {:<24} {}"
_PER_OP = "{:<18} {:>9} {:>7} {:>8} {:>8} {:>7} {:>8}"
_DISK = "{:<18} {:>9} {:>9} {:>9} {:>7}"
# config, N, opened, failed, errno, daemon fds delta, hidden files, bfilp delta, open p50
_FD = "{:<23} {:>5} {:>6} {:>6} {:<6} {:>7} {:>6} {:>6} {:>7}"


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=" " * len(indent) + "  ") or [""]


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "~"


def _header(analysis: Analysis, title: str) -> list[str]:
    env = environment(analysis.results)
    lines = _wrap(title)
    lines += _wrap(environment_line(env))
    lines += [line for key in ENVIRONMENT_BLOCK if env.get(key) for line in _wrap(f"{key}: {env[key]}", "  ")]
    return lines


def _targets(analysis: Analysis) -> list[str]:
    """What each target is (a built-in target is fusebench's own Python server, not FUSE in general)."""
    lines = []
    for name, what in analysis.results.targets_described.items():
        lines += _wrap(f"{name}: {what}", "- ")
    return lines


def _finding_counts(analysis: Analysis) -> list[str]:
    counts = count_by_kind(analysis.findings)
    if not counts:
        return []
    return _wrap("Warnings: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items())
                 + " (listed at the end)")


def _findings(analysis: Analysis) -> list[str]:
    if not analysis.findings:
        return []
    lines = ["", "Warnings:"]
    for finding in analysis.findings:
        lines += _wrap(finding.message, "- ")
    return lines


def headline_table(analysis: Analysis) -> list[str]:
    """The headline table, one block per cell."""
    plain = analysis.plain or "plain"
    lines = [_HEAD.format("", "n", "median", "interval (coverage)", f"%{_fit(analysis.baseline or 'base', 6)}",
                          f"vs {_fit(plain, 16)}").rstrip()]
    current, section = None, None
    for row in headline_rows(analysis):
        if row.section != section:
            section = row.section
            lines.append(f"[{section}]")
        if row.cell != current:
            current = row.cell
            lines.append(_fit(f"{row.cell} ({row.unit})", WIDTH))
        lines.append(_HEAD.format(
            "  " + _fit(row.target, 14), row.n, row.median, row.ci,
            marked(row.of_baseline, row.of_baseline_verdict), marked(row.vs_plain, row.vs_plain_verdict),
        ).rstrip())
        if row.note:
            lines.append(f"    ({row.note})")
    return lines


def verdict_block(analysis: Analysis) -> list[str]:
    """Where passthrough is faster than plain FUSE, unchanged or slower, per section."""
    lines = [f"Passthrough vs {analysis.plain or 'plain FUSE'}, per section:"]
    for text in verdict_lines(analysis):
        lines += _wrap(text, "- ")
    return lines


def per_op_table(analysis: Analysis) -> list[str]:
    """FUSE requests per operation, per file and per MiB, the opens the daemon served, and the
    main opcodes."""
    lines = _wrap("FUSE requests per operation (medians of runs; totals add the opcodes' medians); opens: OPEN "
                  "and CREATE requests per run; backing: passthrough files registered per operation, and "
                  "the daemon's mean time in one BACKING_OPEN and BACKING_CLOSE ioctl")
    lines.append(_PER_OP.format("", "ops/run", "per op", "per file", "per MiB", "opens", "backing").rstrip())
    current = None
    for row in per_op_rows(analysis, top=4):
        if row.cell != current:
            current = row.cell
            lines.append(_fit(row.cell, WIDTH))
        lines.append(_PER_OP.format("  " + _fit(row.target, 16), row.ops, row.per_op, row.per_file, row.per_mib,
                                    row.opens, row.backing_opens).rstrip())
        lines += _wrap(row.opcodes, "    ")
    return lines


def disk_table(analysis: Analysis) -> list[str]:
    """What fio moved against what the block device under the work directory did meanwhile."""
    lines = _wrap("Block device under the work directory during the runs (median MiB per run; share: of "
                  "fio's bytes, what the device moved in the same direction, direct I/O only)")
    lines.append(_DISK.format("", "fio MiB", "dev read", "dev write", "share").rstrip())
    current = None
    for row in analysis.disk.itertuples():
        if row.cell != current:
            current = row.cell
            lines.append(_fit(row.cell, WIDTH))
        share = "" if pd.isna(row.device_share) else f"{row.device_share:.0%}"
        lines.append(_DISK.format("  " + _fit(row.target, 16), format_number(row.fio_mib),
                                  format_number(row.dev_read_mib), format_number(row.dev_write_mib), share).rstrip())
    return lines


def cpu_table(analysis: Analysis) -> list[str]:
    """CPU seconds per GiB by process and user/sys, and per 1,000 I/Os."""
    lines = ["CPU seconds per GiB moved (workload and FUSE daemon, user/sys)",
             _CPU.format("", "wl usr", "wl sys", "dmn usr", "dmn sys", "total", "s/1k op")]
    current = None
    for row in analysis.cpu.itertuples():
        if row.cell != current:
            current = row.cell
            lines.append(_fit(row.cell, WIDTH))
        values = [getattr(row, f"{part}_per_gib") for part in CPU_PARTS]
        lines.append(_CPU.format("  " + _fit(row.target, 16), *(format_number(v) for v in values),
                                 format_number(row.total_s_per_gib), format_number(row.total_s_per_kio)))
    return lines


def _signed(value) -> str:
    return "" if pd.isna(value) else f"{int(value):+d}"


def fd_pressure_table(analysis: Analysis) -> list[str]:
    """Per configuration and N: what opened, what failed, and who holds the open files."""
    steps = analysis.fd_steps
    nofile = sorted({int(n) for n in steps["daemon_nofile"].dropna()}) if "daemon_nofile" in steps else []
    limit = f" (daemon RLIMIT_NOFILE {', '.join(map(str, nofile))})" if nofile else ""
    lines = _wrap(f"fd pressure{limit}: N files opened through the mount and held; fds and files "
                  "counted while held")
    lines.append(_FD.format("", "N", "opened", "failed", "errno", "dmn fds", "hidden", "bfilp", "p50 us").rstrip())
    for step in steps.itertuples():
        errno = step.errno if isinstance(step.errno, str) else ""
        lines.append(_FD.format(
            _fit(step.config, 23), int(step.open_files), int(step.opened), int(step.failed), errno,
            _signed(step.daemon_fds_delta), _signed(step.hidden_files), _signed(step.backing_file_objects),
            format_number(step.open_p50_us),
        ).rstrip())
    lines += _wrap("dmn fds: the daemon's own fds; hidden: open files no process holds (registered backing "
                   "files whose daemon fd is closed); bfilp: the kernel's internal backing files (in no fd "
                   "table, not even in file-nr).")
    for row in analysis.fd_limits.itertuples():
        if row.errno:
            lines += _wrap(f"{row.config}: opens fail from N={int(row.first_failed_n)} ({row.errno})", "- ")
    passthrough = steps[steps["target_type"] == "passthrough"] if "target_type" in steps else steps.iloc[:0]
    per_file = passthrough["kernel_bytes_per_file"].dropna() if "kernel_bytes_per_file" in steps else []
    if len(per_file) and per_file.max() > 0:
        lines += _wrap(f"- kernel memory per passthrough open file: {format_number(per_file.max())} bytes "
                       "(bfilp slab)")
    return lines


def render_report(analysis: Analysis) -> str:
    """The whole text report."""
    name = analysis.results.path.name
    lines = _header(analysis, f"fusebench report: {name}")
    lines += _targets(analysis) + (_wrap(auto_line(analysis)) if auto_line(analysis) else []) + _finding_counts(analysis)
    lines += [""] + headline_table(analysis)
    lines += [""] + [line for text in method_lines(analysis) for line in _wrap(text)]
    if not analysis.verdicts.empty:
        lines += [""] + verdict_block(analysis)
    if not analysis.per_op.empty:
        lines += [""] + per_op_table(analysis)
    if not analysis.disk.empty:
        lines += [""] + disk_table(analysis)
    if not analysis.cpu.empty:
        lines += [""] + cpu_table(analysis)
    if not analysis.fd_steps.empty:
        lines += [""] + fd_pressure_table(analysis)
    lines += _findings(analysis)
    return "\n".join(lines) + "\n"


def render_comparison(a: Analysis, b: Analysis, changes, only) -> str:
    """B relative to A, per matching cell x target; cells present in one only are listed."""
    lines = _wrap(f"fusebench compare: A = {a.results.path.name}, B = {b.results.path.name}")
    lines += _wrap(environment_line(environment(a.results)), "A: ")
    lines += _wrap(environment_line(environment(b.results)), "B: ")
    differs = environment_differences(a, b)
    if differs:
        lines += ["", "The environments differ (part of any change may come from there):"]
        lines += [line for text in differs for line in _wrap(text, "- ")]
    lines += ["", _CMP.format("cell / target", "A", "B", "change B/A [95% CI]", "").rstrip()]
    for row in comparison_rows(changes):
        label = _fit(f"{row['cell']} {row['target']}", 26)
        verdict = row["verdict"]
        lines.append(_CMP.format(label, row["a"], row["b"], row["change"], verdict).rstrip())
    relative = [row for row in comparison_rows(changes) if row["rel_change"]]
    if relative:
        lines += [""] + _wrap(f"Against each folder's baseline ({a.baseline}): the change of each target's speed "
                              "relative to it, which a faster or slower disk in one folder leaves alone")
        lines += [_CMP.format(_fit(f"{row['cell']} {row['target']}", 26), "", "", row["rel_change"],
                              row["rel_verdict"]).rstrip() for row in relative]
    if not only.empty:
        lines += ["", "Present in one folder only:"]
        lines += [f"- {row.cell} / {row.target}: only in {row.only_in}" for row in only.itertuples()]
    lines += [""] + _wrap(comparison_legend(a.settings))
    return "\n".join(lines) + "\n"
