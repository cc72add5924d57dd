"""Markdown report: the headline table, the method, the environment and the warnings."""

from __future__ import annotations

from bench.analysis import Analysis, environment
from bench.analysis.statistics import FASTER, SLOWER
from bench.report.rows import (
    auto_line,
    comparison_legend,
    comparison_rows,
    environment_differences,
    environment_line,
    headline_rows,
    marked,
    method_lines,
    per_op_rows,
    verdict_lines,
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)]


def _marked(text: str, verdict: str) -> str:
    return f"**{marked(text, verdict)}**" if text and verdict in (FASTER, SLOWER) else marked(text, verdict)


def render_report(analysis: Analysis) -> str:
    """The whole Markdown report."""
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
    per_op = per_op_rows(analysis)
    if per_op:
        lines += ["", "## FUSE requests per operation", ""]
        lines += _table(["cell", "target", "ops/run", "per op", "per file", "per MiB", "opens/run", "backing/op",
                         "opcodes (per op)"],
                        [[r.cell, r.target, r.ops, r.per_op, r.per_file, r.per_mib, r.opens, r.backing_opens,
                          r.opcodes] for r in per_op])
    if analysis.findings:
        lines += ["", "## Warnings", ""] + [f"- {finding.message}" for finding in analysis.findings]
    return "\n".join(lines) + "\n"


def render_comparison(a: Analysis, b: Analysis, changes, only) -> str:
    """B relative to A as Markdown."""
    lines = [f"# fusebench compare: {a.results.path.name} (A) vs {b.results.path.name} (B)", "",
             f"- A: {environment_line(environment(a.results))}",
             f"- B: {environment_line(environment(b.results))}", ""]
    differs = environment_differences(a, b)
    if differs:
        lines += ["## The environments differ", ""] + [f"- {line}" for line in differs] + [""]
    rows = [[r["cell"], r["target"], r["unit"], r["a"], r["b"], _marked(r["change"], bool(r["verdict"])), r["p"], r["verdict"]]
            for r in comparison_rows(changes)]
    lines += _table(["cell", "target", "unit", "A median", "B median", "change B/A [95% CI]", "p", "verdict"], rows)
    relative = [r for r in comparison_rows(changes) if r["rel_change"]]
    if relative:
        lines += ["", f"## Against each folder's baseline ({a.baseline})", ""]
        lines += _table(["cell", "target", "change of the speed relative to the baseline [95% CI]", "verdict"],
                        [[r["cell"], r["target"], r["rel_change"], r["rel_verdict"]] for r in relative])
    lines += ["", comparison_legend(a.settings)]
    if not only.empty:
        lines += ["", "## Present in one folder only", ""]
        lines += [f"- {row.cell} / {row.target}: only in {row.only_in}" for row in only.itertuples()]
    return "\n".join(lines) + "\n"
