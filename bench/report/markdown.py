"""Markdown report: the headline table, the method, the sweeps, the environment and the warnings."""

from __future__ import annotations

import textwrap

from bench.analysis import Analysis, environment
from bench.analysis.compare import Comparison
from bench.analysis.statistics import FASTER, SLOWER
from bench.report.rows import (
    SUMMARY_HEADER,
    ascii_only,
    auto_line,
    change_rows,
    comparison_legend,
    comparison_summary_rows,
    environment_line,
    headline_rows,
    marked,
    method_lines,
    note_lines,
    only_lines,
    per_op_rows,
    sweep_tables,
    verdict_lines,
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)]


def _marked(text: str, verdict: str) -> str:
    return f"**{marked(text, verdict)}**" if text and verdict in (FASTER, SLOWER) else marked(text, verdict)


def _document(lines: list[str], width: int | None) -> str:
    """The lines as one ASCII document, prose wrapped at `width` (tables and headings never are)."""
    if width is not None:
        lines = [wrapped for line in lines for wrapped in (
            [line] if line.startswith(("|", "#")) or len(line) <= width
            else textwrap.wrap(line, width, subsequent_indent="  " if line.startswith("- ") else ""))]
    return ascii_only("\n".join(lines) + "\n")


def render_report(analysis: Analysis, width: int | None = None) -> str:
    """The whole Markdown report, ASCII only; prose wrapped at `width` when given."""
    plain = analysis.plain or "plain"
    rows = [
        [row.section, row.cell, row.unit, row.target, str(row.n), row.median, row.ci,
         _marked(row.of_baseline, row.of_baseline_verdict), _marked(row.vs_plain, row.vs_plain_verdict), row.note]
        for row in headline_rows(analysis)
    ]
    lines = [f"# fusebench report: {analysis.results.path.name}", "",
             environment_line(environment(analysis.results)), ""]
    lines += [f"- {name}: {what}" for name, what in analysis.results.targets_described.items()]
    lines += ([f"- {auto_line(analysis)}"] if auto_line(analysis) else []) + [""]
    lines += _table(["section", "cell", "unit", "target", "n", "median", "interval (coverage)",
                     f"% {analysis.baseline or 'baseline'}", f"vs {plain}", "note"], rows)
    lines += [""] + [f"- {text}" for text in method_lines(analysis)]
    verdicts = verdict_lines(analysis)
    if verdicts:
        lines += ["", f"## Passthrough vs {plain}, per section", ""] + [f"- {text}" for text in verdicts]
    sweeps = sweep_tables(analysis)
    if sweeps:
        lines += ["", "## Sweeps (each target's median [the median's interval])"]
    for table in sweeps:
        lines += ["", f"### {table.title}" + (f"; intervals cover {table.coverage}" if table.coverage else ""), ""]
        lines += _table([table.key, *table.targets],
                        [[label, *(f"{median} {interval}".rstrip() for median, interval in row)] for label, row in table.rows])
    per_op = per_op_rows(analysis)
    if per_op:
        lines += ["", "## FUSE requests per operation", ""]
        lines += _table(["cell", "target", "ops/run", "per op", "per file", "per MiB", "opens/run", "backing/op",
                         "opcodes (per op)"],
                        [[r.cell, r.target, r.ops, r.per_op, r.per_file, r.per_mib, r.opens, r.backing_opens,
                          r.opcodes] for r in per_op])
    if analysis.findings:
        lines += ["", "## Warnings", ""] + [f"- {finding.message}" for finding in analysis.findings]
    return _document(lines, width)


def render_comparison(comparison: Comparison, width: int | None = None) -> str:
    """Every other folder relative to the base as Markdown (a summary, then a table per metric with
    a column per folder), ASCII only; prose wrapped at `width` when given."""
    base, names = comparison.base, comparison.names
    analyses = [base, *comparison.others]
    lines = [f"# fusebench compare: {', '.join(names[1:])} against {names[0]}", ""]
    lines += [f"- {name}: {environment_line(environment(analysis.results))}" for name, analysis in zip(names, analyses)]
    for name, differs in comparison.differences.items():
        if differs:
            lines += ["", f"## {name}'s environment differs from {names[0]}'s", ""] + [f"- {line}" for line in differs]
    lines += ["", "## Summary", ""] + _table(SUMMARY_HEADER, comparison_summary_rows(comparison))
    rows = change_rows(comparison)
    for metric in dict.fromkeys(row.metric for row in rows):
        mine = [row for row in rows if row.metric == metric]
        by_pair: dict[tuple[str, str], dict[str, str]] = {}
        for row in mine:
            figures = by_pair.setdefault((row.cell, row.target), {"unit": row.unit, names[0]: row.base})
            figures[row.folder] = f"{row.median} {_marked(row.change, row.verdict)}"
        lines += ["", f"## {mine[0].label}", ""]
        lines += _table(["cell", "target", "unit", *names],
                        [[cell, target, figures["unit"], *(figures.get(name, "") for name in names)]
                         for (cell, target), figures in by_pair.items()])
    relative = [row for row in rows if row.rel_change]
    if relative:
        lines += ["", f"## Against each folder's baseline ({base.baseline})", ""]
        lines += _table(["cell", "target", "folder", "change of the speed relative to the baseline", "verdict"],
                        [[r.cell, r.target, r.folder, r.rel_change, r.rel_word] for r in relative])
    lines += ["", comparison_legend(comparison)]
    only = only_lines(comparison)
    if only:
        lines += ["", "## Present in some folders only", ""] + [f"- {line}" for line in only]
    notes = note_lines(comparison)
    if notes:
        lines += ["", "## Not compared, or compared with a caveat", ""] + [f"- {line}" for line in notes]
    warnings = [f"{name}: {f.message}" for name, analysis in zip(names, analyses) for f in analysis.findings]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {line}" for line in warnings]
    return _document(lines, width)
