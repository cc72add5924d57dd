"""Plain-text report: aligned tables at most 80 columns wide, to paste into a cover letter."""

from __future__ import annotations

import textwrap

from bench.analysis import CPU_PARTS, Analysis, environment, format_number
from bench.report.rows import SIGNIFICANT, comparison_rows, environment_line, headline_rows, method_lines

WIDTH = 80
# target, n, median, CI, % native, vs plain
_HEAD = "{:<18} {:>3} {:>8}  {:<16} {:<7}  {}"
_CPU = "{:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}"
_CMP = "{:<26} {:>8} {:>8}  {:<24} {}"


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=" " * len(indent) + "  ") or [""]


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "~"


def _marked(text: str, significant: bool) -> str:
    return f"{text} {SIGNIFICANT}" if text and significant else text


def _header(analysis: Analysis, title: str) -> list[str]:
    env = environment(analysis.results)
    lines = _wrap(title)
    lines += _wrap(environment_line(env))
    return lines


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
    lines = [_HEAD.format("", "n", "median", "95% CI", "%native", f"vs {_fit(plain, 16)}").rstrip()]
    current = None
    for row in headline_rows(analysis):
        if row.cell != current:
            current = row.cell
            lines.append(_fit(f"{row.cell} ({row.unit})", WIDTH))
        spread = row.ci or (f"({row.note})" if row.note else "")
        lines.append(_HEAD.format(
            "  " + _fit(row.target, 16), row.n, row.median, spread,
            _marked(row.of_native, row.of_native_significant),
            _marked(row.vs_plain, row.vs_plain_significant),
        ).rstrip())
    return lines


def cpu_table(analysis: Analysis) -> list[str]:
    """CPU seconds per GiB by process and user/sys, and per 1,000 I/Os."""
    lines = ["CPU seconds per GiB moved (fio and FUSE daemon, user/sys)",
             _CPU.format("", "fio usr", "fio sys", "dmn usr", "dmn sys", "total", "s/1k IO")]
    current = None
    for row in analysis.cpu.itertuples():
        if row.cell != current:
            current = row.cell
            lines.append(_fit(row.cell, WIDTH))
        values = [getattr(row, f"{part}_per_gib") for part in CPU_PARTS]
        lines.append(_CPU.format("  " + _fit(row.target, 16), *(format_number(v) for v in values),
                                 format_number(row.total_s_per_gib), format_number(row.total_s_per_kio)))
    return lines


def render_report(analysis: Analysis) -> str:
    """The whole text report."""
    name = analysis.results.path.name
    lines = _header(analysis, f"fusebench report: {name}")
    lines += [""] + headline_table(analysis)
    lines += [""] + [line for text in method_lines(analysis) for line in _wrap(text)]
    if not analysis.cpu.empty:
        lines += [""] + cpu_table(analysis)
    lines += _findings(analysis)
    return "\n".join(lines) + "\n"


def render_comparison(a: Analysis, b: Analysis, changes, only) -> str:
    """B relative to A, per matching cell x target; cells present in one only are listed."""
    lines = _wrap(f"fusebench compare: A = {a.results.path.name}, B = {b.results.path.name}")
    lines += _wrap(environment_line(environment(a.results)), "A: ")
    lines += _wrap(environment_line(environment(b.results)), "B: ")
    lines += ["", _CMP.format("cell / target", "A", "B", "change B/A [95% CI]", "").rstrip()]
    for row in comparison_rows(changes):
        label = _fit(f"{row['cell']} {row['target']}", 26)
        verdict = f"{SIGNIFICANT} {row['verdict']}" if row["verdict"] else ""
        lines.append(_CMP.format(label, row["a"], row["b"], row["change"], verdict).rstrip())
    if not only.empty:
        lines += ["", "Present in one folder only:"]
        lines += [f"- {row.cell} / {row.target}: only in {row.only_in}" for row in only.itertuples()]
    lines += [""] + _wrap(f"{SIGNIFICANT} significant: Welch's t-test p < {a.settings.alpha} and a change of at "
                          f"least {a.settings.threshold:.0%}; CI: bootstrap of the ratio of medians.")
    return "\n".join(lines) + "\n"
