"""Plain-text report: ASCII, aligned tables at most 80 columns wide (or --width), to paste into a
cover letter."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pandas as pd

from bench.analysis import CPU_PARTS, Analysis, count_by_kind, environment
from bench.analysis.compare import Comparison
from bench.analysis.load import ENVIRONMENT_BLOCK
from bench.report.fdrows import fd_sentences, fd_view_notes, releases_in, step_tables
from bench.report.rows import (
    SUMMARY_HEADER,
    ascii_only,
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
    verdict_lines,
)

WIDTH = 80          # the default; --width sets another (72 for mail)
_GAP = "  "
_width: ContextVar[int] = ContextVar("text_width", default=WIDTH)


@contextmanager
def _at_width(width: int) -> Iterator[None]:
    token = _width.set(width)
    try:
        yield
    finally:
        _width.reset(token)


class Group(str):
    """A table row that names the rows below it (a cell): printed across the table, in every block."""


class Note(str):
    """A line under a table row (a note, the opcodes): printed once, in the first block, wrapped."""


Row = list[str] | Group | Note


def _sizes(columns: list[tuple[str, str]], rows: list[Row]) -> list[int]:
    """Each column's width: what its contents need; the labels cut (in the middle) only where the
    other columns leave them less than a third of the line."""
    cells = [row for row in rows if not isinstance(row, str)]
    sizes = [max([len(title), *(len(row[i]) for row in cells)]) for i, (title, _) in enumerate(columns)]
    rest = sum(sizes[1:]) + len(_GAP) * (len(sizes) - 1)
    sizes[0] = min(sizes[0], max(_width.get() // 3, _width.get() - rest))
    return sizes


def _fits(columns: list[tuple[str, str]], rows: list[Row]) -> bool:
    """Whether the table fits the width with its columns two spaces apart."""
    sizes = _sizes(columns, rows)
    return sum(sizes) + len(_GAP) * (len(sizes) - 1) <= _width.get()


def _table(columns: list[tuple[str, str]], rows: list[Row]) -> list[str]:
    """Aligned columns sized to their contents (`columns`: title and '<' or '>' each; the first
    is the label), two spaces apart, or one where that makes them fit the width. Columns that
    still do not fit go to a further block of the same rows."""
    width = _width.get()
    sizes = _sizes(columns, rows)
    gap = _GAP if _fits(columns, rows) else " "
    blocks: list[list[int]] = [[]]
    used = sizes[0]
    for i in range(1, len(columns)):
        if blocks[-1] and used + len(gap) + sizes[i] > width:
            blocks.append([])
            used = sizes[0]
        blocks[-1].append(i)
        used += len(gap) + sizes[i]

    def line(values: list[str], block: list[int]) -> str:
        parts = [f"{_fit(values[0], sizes[0]):<{sizes[0]}}"]
        parts += [f"{_fit(values[i], sizes[i]):{columns[i][1]}{sizes[i]}}" for i in block]
        return gap.join(parts).rstrip()

    lines: list[str] = []
    for number, block in enumerate(blocks):
        lines += [""] if number else []
        lines.append(line([title for title, _ in columns], block))
        for row in rows:
            if isinstance(row, Group):
                lines.append(_fit(row, width))
            elif isinstance(row, Note):
                lines += _wrap(row, "    ") if number == 0 else []
            else:
                lines.append(line(row, block))
    return lines


def _wrap(text: str, indent: str = "", hyphens: bool = True) -> list[str]:
    """`text` wrapped at the width, its further lines indented 2 more; `hyphens`: may break after one."""
    return textwrap.wrap(text, _width.get(), initial_indent=indent, subsequent_indent=" " * len(indent) + "  ",
                         break_on_hyphens=hyphens) or [""]


def _fit(name: str, width: int) -> str:
    """`name` in `width` columns, cut in the middle: names that differ at their ends (a date, a
    sweep value) stay told apart."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "~" + name[len(name) - (width - 1 - head):]


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
    rows: list[Row] = []
    current, section = None, None
    for row in headline_rows(analysis):
        if row.section != section:
            section = row.section
            rows.append(Group(f"[{section}]"))
        if row.cell != current:
            current = row.cell
            rows.append(Group(f"{row.cell} ({row.unit})"))
        rows.append(["  " + row.target, str(row.n), row.median, row.ci, marked(row.of_baseline, row.of_baseline_verdict),
                     marked(row.vs_plain, row.vs_plain_verdict)])
        if row.note:
            rows.append(Note(f"({row.note})"))
    return _table([("", "<"), ("n", ">"), ("median", ">"), ("interval (coverage)", "<"),
                   (f"% {analysis.baseline or 'base'}", "<"), (f"vs {analysis.plain or 'plain'}", "<")], rows)


def verdict_block(analysis: Analysis) -> list[str]:
    """Where passthrough is faster than plain FUSE, unchanged or slower, per section."""
    lines = [f"Passthrough vs {analysis.plain or 'plain FUSE'}, per section:"]
    for text in verdict_lines(analysis):
        lines += _wrap(text, "- ")
    return lines


def sweep_table(analysis: Analysis) -> list[str]:
    """Each sweep curve as a table: a row per swept value, a column per target with its median
    and the median's interval (medians alone when that does not fit)."""
    lines = _wrap("Sweeps: each target's median at each swept value [the median's interval]")
    for table in sweep_tables(analysis):
        lines += [""] + _wrap(table.title + (f"; intervals cover {table.coverage}" if table.coverage else ""))
        columns = [("  " + table.key, "<"), *((target, ">") for target in table.targets)]
        rows: list[Row] = [["  " + label, *(f"{median} {interval}".rstrip() for median, interval in row)]
                           for label, row in table.rows]
        if not _fits(columns, rows):
            rows = [["  " + label, *(median for median, _ in row)] for label, row in table.rows]
        lines += _table(columns, rows)
    return lines


def _by_cell(items: Iterable, rows_of: Callable[[Any], list[Row]]) -> list[Row]:
    """Table rows of `items` (each with a `cell`, in cell order): a Group line where the cell
    changes, then `rows_of(item)`."""
    rows: list[Row] = []
    current = None
    for item in items:
        if item.cell != current:
            current = item.cell
            rows.append(Group(item.cell))
        rows += rows_of(item)
    return rows


def per_op_table(analysis: Analysis) -> list[str]:
    """FUSE requests per operation, per file and per MiB, the opens the daemon served, and the
    main opcodes."""
    lines = _wrap("FUSE requests per operation (medians of runs; totals add the opcodes' medians); opens: OPEN "
                  "and CREATE requests per run; backing: passthrough files registered per operation, and "
                  "the daemon's mean time in one BACKING_OPEN and BACKING_CLOSE ioctl")
    rows = _by_cell(per_op_rows(analysis, top=4), lambda row: [
        ["  " + row.target, row.ops, row.per_op, row.per_file, row.per_mib, row.opens, row.backing_opens],
        Note(row.opcodes)])
    return lines + _table([("", "<"), ("ops/run", ">"), ("per op", ">"), ("per file", ">"), ("per MiB", ">"),
                           ("opens", ">"), ("backing", ">")], rows)


def disk_table(analysis: Analysis) -> list[str]:
    """What fio moved against what the block device under the work directory did meanwhile."""
    lines = _wrap("Block device under the work directory during the runs (median MiB per run; share: of "
                  "fio's bytes, what the device moved in the same direction, direct I/O only)")
    rows = _by_cell(analysis.disk.itertuples(), lambda row: [[
        "  " + row.target, format_number(row.fio_mib), format_number(row.dev_read_mib),
        format_number(row.dev_write_mib), "" if pd.isna(row.device_share) else f"{row.device_share:.0%}"]])
    return lines + _table([("", "<"), ("fio MiB", ">"), ("dev read", ">"), ("dev write", ">"), ("share", ">")], rows)


def cpu_table(analysis: Analysis) -> list[str]:
    """CPU seconds per GiB by process and user/sys, and per 1,000 I/Os."""
    rows = _by_cell(analysis.cpu.itertuples(), lambda row: [[
        "  " + row.target, *(format_number(getattr(row, f"{part}_per_gib")) for part in CPU_PARTS),
        format_number(row.total_s_per_gib), format_number(row.total_s_per_kio)]])
    return _wrap("CPU seconds per GiB moved (workload and FUSE daemon, user/sys)") + _table(
        [("", "<"), ("wl usr", ">"), ("wl sys", ">"), ("dmn usr", ">"), ("dmn sys", ">"), ("total", ">"),
         ("s/1k op", ">")], rows)


def fd_pressure_table(analysis: Analysis) -> list[str]:
    """Per configuration: the figures to quote in a sentence, then per step who can see the
    files while they are held and what stays after the close, and notes on who can see them."""
    steps = analysis.fd_steps
    nofile = sorted({int(n) for n in steps["daemon_nofile"].dropna()}) if "daemon_nofile" in steps else []
    limit = f" (daemon RLIMIT_NOFILE {', '.join(map(str, nofile))})" if nofile else ""
    releases = releases_in(steps)
    lines = _wrap(f"fd pressure{limit}: N files opened through the mount and held, then closed"
                  + (f" and released by {', '.join(releases)}" if releases else ""))
    for text in fd_sentences(analysis):
        lines += _wrap(text, "- ", hyphens=False)
    held, after = step_tables(steps)
    lines += [""] + _wrap("While held (counts are growth from the clients' start to all files held):") + _table(held.columns, _step_rows(held))
    legend = {"clients": "clients: client processes", "visible": "visible: files in some fd table (what lsof lists)",
              "dmn fds": "dmn fds: the daemon's own fds",
              "hidden": "hidden: open files no process holds (in file-nr)",
              "bfilp": "bfilp: the kernel's backing files (in no fd table, not in file-nr)",
              "listed": "listed: what the kernel lists for the connection",
              "B/file": "B/file: kernel memory per open file (all tracked slabs)"}
    titles = [title for title, _ in held.columns]
    lines += _wrap("; ".join(text for key, text in legend.items() if key in titles) + ".")
    if after is not None:
        lines += [""] + _wrap("After the close, before the release (idle ids: backing ids still registered; B/file: "
                              "slab bytes per file still cached; closed: ids the server closed; release s: time "
                              "to release; back: every count came back):")
        lines += _table(after.columns, _step_rows(after))
    for text in fd_view_notes(steps):
        lines += _wrap(text, "- ", hyphens=False)
    return lines


def _step_rows(table) -> list[Row]:
    rows: list[Row] = []
    for config, mine in table.groups:
        rows.append(Group(config))
        rows += mine
    return rows


def render_report(analysis: Analysis, width: int = WIDTH) -> str:
    """The whole text report, at most `width` columns, ASCII only."""
    with _at_width(width):
        return ascii_only("\n".join(_report_lines(analysis)) + "\n")


def _report_lines(analysis: Analysis) -> list[str]:
    name = analysis.results.path.name
    lines = _header(analysis, f"fusebench report: {name}")
    lines += _targets(analysis) + (_wrap(auto_line(analysis)) if auto_line(analysis) else []) + _finding_counts(analysis)
    lines += [""] + headline_table(analysis)
    lines += [""] + [line for text in method_lines(analysis) for line in _wrap(text)]
    if not analysis.verdicts.empty:
        lines += [""] + verdict_block(analysis)
    if not analysis.sweeps.empty:
        lines += [""] + sweep_table(analysis)
    if not analysis.per_op.empty:
        lines += [""] + per_op_table(analysis)
    if not analysis.disk.empty:
        lines += [""] + disk_table(analysis)
    if not analysis.cpu.empty:
        lines += [""] + cpu_table(analysis)
    if not analysis.fd_steps.empty:
        lines += [""] + fd_pressure_table(analysis)
    lines += _findings(analysis)
    return lines


def render_comparison(comparison: Comparison, width: int = WIDTH) -> str:
    """Every other folder relative to the base, per metric, cell and target; a summary per folder;
    the pairs some folders lack; what differs in the environments. At most `width` columns, ASCII."""
    with _at_width(width):
        return ascii_only("\n".join(_comparison_lines(comparison)) + "\n")


def _comparison_lines(comparison: Comparison) -> list[str]:
    base, names = comparison.base, comparison.names
    label = _folder_labels(names)
    lines = _wrap(f"fusebench compare: base {names[0]}; against it: {', '.join(names[1:])}")
    for name, analysis in zip(names, [base, *comparison.others]):
        key = f"{label[name]}: {name}" if label[name] != name else f"{name}:"
        lines += _wrap(key) + _wrap(environment_line(environment(analysis.results)), "  ")
    for name, differs in comparison.differences.items():
        if differs:
            lines += [""] + _wrap(f"{name}'s environment differs from {names[0]}'s (part of any change may come "
                                  "from there):")
            lines += [line for text in differs for line in _wrap(text, "- ")]
    lines += [""] + _wrap("Summary: per folder and metric, the geometric mean of the changes and the verdicts")
    lines += _table([(title, "<" if i < 2 else ">") for i, title in enumerate(SUMMARY_HEADER)],
                    [[label[row[0]], *row[1:]] for row in comparison_summary_rows(comparison)])
    rows = change_rows(comparison)
    columns = [("", "<"), ("median", ">"), ("n", ">"), ("change [interval]", "<"), ("verdict", "<")]
    for metric in dict.fromkeys(row.metric for row in rows):
        mine = [row for row in rows if row.metric == metric]
        lines += ["", f"[{mine[0].label}]"] + _table(columns, _change_table(mine, names[0], label))
    relative = [row for row in rows if row.rel_change]
    if relative:
        lines += [""] + _wrap(f"Against each folder's baseline ({base.baseline}): the change of each target's speed "
                              "relative to it, which a faster or slower disk in one folder leaves alone")
        table: list[Row] = []
        pair = None
        for row in relative:
            if (row.cell, row.target) != pair:
                pair = (row.cell, row.target)
                table.append(Group(f"{row.cell} / {row.target}"))
            table.append(["  " + label[row.folder], row.rel_change, row.rel_word])
        lines += _table([("", "<"), ("change [interval]", "<"), ("verdict", "<")], table)
    only = only_lines(comparison)
    if only:
        lines += ["", "Present in some folders only:"] + [line for text in only for line in _wrap(text, "- ")]
    notes = note_lines(comparison)
    if notes:
        lines += ["", "Not compared, or compared with a caveat:"] + [line for text in notes for line in _wrap(text, "- ")]
    warnings = [f"{name}: {finding.message}" for name, analysis in zip(names, [base, *comparison.others])
                for finding in analysis.findings]
    if warnings:
        lines += ["", "Warnings:"] + [line for text in warnings for line in _wrap(text, "- ")]
    lines += [""] + _wrap(comparison_legend(comparison))
    return lines


def _folder_labels(names: list[str]) -> dict[str, str]:
    """What the tables call each folder: its name, or A, B, C... (said in the header) when a name
    would take more than a third of the line."""
    if max(len(name) for name in names) + 2 <= _width.get() // 3:
        return {name: name for name in names}
    return {name: _letters(i) for i, name in enumerate(names)}


def _letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA ..."""
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = chr(ord("A") + rest) + text
    return text


def _change_table(rows: list, base: str, label: dict[str, str]) -> list[Row]:
    """The rows of one metric: per cell x target, the base folder's median, then each folder's."""
    table: list[Row] = []
    pair = None
    for row in rows:
        if (row.cell, row.target) != pair:
            pair = (row.cell, row.target)
            table += [Group(f"{row.cell} / {row.target} ({row.unit})"),
                      ["  " + label[base], row.base, str(row.n_base), "base", ""]]
        table.append(["  " + label[row.folder], row.median, str(row.n), row.change, row.word])
    return table
