"""Formatted rows shared by every writer: one definition of what the headline table says."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis import SECTIONS, Analysis
from bench.analysis.compare import COMPARED_METRICS, Comparison
from bench.analysis.metrics import PASSTHROUGH_VERDICTS
from bench.analysis.statistics import (
    EQUIVALENT,
    FASTER,
    SLOWER,
    UNDECIDED,
    VERDICTS,
    median_interval,
    runs_for_median_interval,
)

# How every format marks a comparison's verdict (report/text legends say the same).
VERDICT_MARKS = {FASTER: "+", SLOWER: "-", EQUIVALENT: "=", UNDECIDED: "?", "": ""}


@dataclass(frozen=True)
class HeadlineRow:
    """One cell x target line of the headline table, as text."""

    section: str
    cell: str
    unit: str
    target: str
    target_type: str
    n: int
    median: str
    ci: str                 # "[1980, 2020] 75%": the median's interval and its coverage
    of_baseline: str        # "100%" or ""
    of_baseline_verdict: str  # faster, slower, equivalent, undecided or ""
    vs_plain: str           # "4.00x [3.88-4.12]" or ""
    vs_plain_verdict: str
    note: str               # "3 missing", "1 failed", "1 not engaged", "1 outlier" ...


# What a mail or a terminal without UTF-8 shows of the characters text reports may quote.
_ASCII = str.maketrans({"\u00b5": "u", "\u03bc": "u", "\u00d7": "x", "\u2013": "-", "\u2014": "-", "\u2212": "-",
                        "\u2026": "...", "\u00b1": "+-", "\u2264": "<=", "\u2265": ">=", "\u2018": "'",
                        "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def ascii_only(text: str) -> str:
    """`text` in ASCII: known symbols spelled out, accents dropped, anything else as '?'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return "".join(char for char in decomposed if not unicodedata.combining(char)).encode("ascii", "replace").decode()


def format_number(value: float) -> str:
    """A figure with the precision a reader needs: whole numbers from 100 up, else 2-3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def is_number(value: float) -> bool:
    """Whether `value` is a number: not None, pandas' NA or NaN."""
    return value is not None and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))


def ratio_text(ratio: float, low: float, high: float) -> str:
    """'4.00x [3.88-4.12]'; just '0.50x' when there is no CI."""
    if not is_number(ratio):
        return ""
    if not (is_number(low) and is_number(high)):
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x [{low:.2f}-{high:.2f}]"


def ci_text(low: float, high: float, level: float | None = None) -> str:
    """'[1980, 2020]' with its coverage when given ('[1980, 2020] 75%'), or '' without one."""
    if not (is_number(low) and is_number(high)):
        return ""
    text = f"[{format_number(low)}, {format_number(high)}]"
    return f"{text} {coverage_text(level)}" if is_number(level) else text


def coverage_text(level: float) -> str:
    """An interval's coverage, rounded down so it never claims more: 0.9375 -> '93.7%'."""
    return f"{math.floor(level * 1000) / 10:g}%"


def marked(text: str, verdict: str) -> str:
    """A comparison's text followed by its verdict mark ('1.61x [1.30-1.83] +')."""
    mark = VERDICT_MARKS.get(verdict, "")
    return f"{text} {mark}" if text and mark else text


def change_text(ratio: float, low: float, high: float) -> str:
    """A ratio as a signed percent change with its CI: '+10.0% [+8.9, +11.1]'."""
    if not is_number(ratio):
        return ""

    def percent_change(value: float) -> str:
        return f"{round((value - 1) * 100, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0" for a change that rounds to 0

    text = f"{percent_change(ratio)}%"
    if is_number(low) and is_number(high):
        text += f" [{percent_change(low)}, {percent_change(high)}]"
    return text


def _note(row) -> str:
    parts = []
    if row.missing:
        parts.append(f"{row.missing} missing")
    if row.failed:
        parts.append(f"{row.failed} failed")
    if row.unavailable:
        parts.append(f"{row.unavailable} unavailable")
    if row.excluded:
        parts.append(f"{row.excluded} not engaged")
    if row.outliers:
        parts.append(f"{row.outliers} outlier{'s' if row.outliers > 1 else ''}")
    return ", ".join(parts)


def headline_rows(analysis: Analysis) -> list[HeadlineRow]:
    """The headline table: every cell x target, by section, in scenario order within one."""
    rows = []
    rank = {name: i for i, name in enumerate(SECTIONS)}
    summary = analysis.summary.iloc[np.argsort(analysis.summary["section"].map(rank).to_numpy(), kind="stable")]
    for row in summary.itertuples():
        rows.append(HeadlineRow(
            section=row.section, cell=row.cell, unit=row.unit, target=row.target, target_type=row.target_type, n=int(row.n),
            median=format_number(row.median) if row.n else "-",
            ci=ci_text(row.ci_low, row.ci_high, row.ci_level),
            of_baseline=f"{row.vs_baseline_ratio:.0%}" if is_number(row.vs_baseline_ratio) else "",
            of_baseline_verdict=row.vs_baseline_verdict,
            vs_plain=ratio_text(row.vs_plain_ratio, row.vs_plain_ratio_low, row.vs_plain_ratio_high),
            vs_plain_verdict=row.vs_plain_verdict,
            note=_note(row),
        ))
    return rows


def method_lines(analysis: Analysis) -> list[str]:
    """What the numbers mean, in the words every format prints."""
    s = analysis.settings
    plain = analysis.plain or "plain FUSE"
    baseline = analysis.baseline or "the baseline"
    marks = ", ".join(f"{mark} {verdict}" for verdict, mark in VERDICT_MARKS.items() if mark)
    needed = runs_for_median_interval(s.confidence)
    at_three = median_interval(np.arange(3.0), s.confidence).coverage
    looks = (f" With repeat: auto every check used {s.compare_confidence:.2%} intervals ({s.looks} possible checks), "
             f"so a verdict keeps {s.confidence:.0%} however often it was checked." if s.looks > 1 else "")
    return [
        "Median of the runs, with a distribution-free interval from order statistics and its exact coverage "
        f"(the narrowest reaching {s.confidence:.0%}; with fewer than {needed} runs only [min, max], which covers "
        f"less: {at_three:.0%} at 3 runs).",
        "Primary metric: MiB/s for sequential or >= 64k blocks, IOPS for random small blocks (read + write); "
        "operations/s for metadata engines, opens/s for open/close loops, seconds for programs.",
        f"% {baseline}: speed as a share of {baseline}'s; vs {plain}: passthrough's speed against plain. Both are "
        f"ratios of geometric means with a {percent(s.compare_confidence)} Welch t-interval on log values; for programs the "
        "baseline's time / the target's, so above 1 is always faster.",
        f"Verdict ({marks}): faster or slower when the whole interval lies beyond {s.threshold:.0%}, equivalent when "
        f"it lies within it, else undecided (`repeat: auto` adds repetitions until none is).{looks}",
    ]


def percent(share: float) -> str:
    """0.95 -> '95%', 0.995 -> '99.5%'."""
    return f"{share * 100:.3g}%"


def auto_line(analysis: Analysis) -> str:
    """How a `repeat: auto` run ended: after how many repetitions, why, and what stayed undecided."""
    manifest = analysis.results.manifest
    auto = manifest.auto if manifest else None
    if auto is None:
        return ""
    budget = f"{auto.max_repeat} repetitions" + (f" or {auto.max_time_s / 60:g} min" if auto.max_time_s else "")
    head = f"repeat: auto, {manifest.repeat} repetitions in {auto.elapsed_s / 60:.1f} min (budget {budget}): "
    if auto.stopped is None:
        return head + "not finished; `fusebench run --resume` goes on"
    reason = {"decided": "every comparison with the baseline decided",
              "max_repeat": "stopped at max_repeat", "max_time": "stopped at max_time"}[auto.stopped]
    return head + reason + (f"; undecided: {', '.join(auto.undecided)}" if auto.undecided else "")


def target_facts_line(facts: dict) -> str:
    """What a manifest says of a target, in one line: its FUSE protocol and INIT flags, or its version."""
    init = facts.get("init") or {}
    parts = []
    if init:
        parts.append(f"FUSE {init.get('protocol')} (kernel offered {init.get('kernel_protocol')}), flags "
                     f"{' '.join(init.get('flags') or [])}, max_write {init.get('max_write')}, max_pages "
                     f"{init.get('max_pages')}, max_background {init.get('max_background')}")
    if facts.get("argv"):
        parts.append("argv " + " ".join(facts["argv"]) + (f"; {facts['version']}" if facts.get("version") else ""))
    return "; ".join(parts)


def environment_line(env: dict[str, str]) -> str:
    """The environment in one line (wrapped by the caller if needed)."""
    return (f"kernel {env['kernel']}; {env['cpu']}, {env['memory']}; {env['fio']}; "
            f"fusebench {env['tool']}; scenario {env['scenario']}")


def comparison_legend(comparison: Comparison) -> str:
    """What a comparison's change and its verdict mean, in the words every format prints."""
    s = comparison.settings
    return (f"change: a folder's figure relative to {comparison.names[0]}'s as a speed, a ratio of geometric means "
            f"with a {percent(s.compare_confidence)} Welch t-interval on log values; for latency, CPU cost, request "
            f"counts and programs' times {comparison.names[0]}'s / the folder's, so a + change is always better. "
            f"better or worse: the whole interval lies beyond {s.threshold:.0%}; same: within it; ?: undecided.")


COMPARISON_WORDS = {FASTER: "better", SLOWER: "worse", EQUIVALENT: "same", UNDECIDED: "?"}


@dataclass(frozen=True)
class ChangeRow:
    """One folder x cell x target x metric of `compare`, as text."""

    folder: str
    cell: str
    target: str
    metric: str         # a COMPARED_METRICS key
    label: str          # what the metric is, in words
    unit: str
    n_base: int
    base: str           # the base folder's median
    n: int
    median: str         # this folder's median
    change: str         # "+10.0% [+8.9, +11.1]"
    p: str
    verdict: str        # faster, slower, equivalent, undecided (as statistics.decide says)
    word: str           # the verdict as `compare` words it: better, worse, same, ?
    rel_change: str     # the same against each folder's baseline target ("" when not compared)
    rel_word: str


def _p_text(p: float) -> str:
    return ("<0.001" if p < 0.001 else f"{p:.3f}") if is_number(p) else ""


def change_rows(comparison: Comparison) -> list[ChangeRow]:
    """Every change of `compare` as text, in its order: by metric, then cell and target, then folder."""
    return [ChangeRow(
        folder=row.folder, cell=row.cell, target=row.target, metric=row.metric,
        label=COMPARED_METRICS[row.metric].label, unit=row.unit,
        n_base=int(row.n_base), base=format_number(row.median_base), n=int(row.n), median=format_number(row.median),
        change=change_text(row.ratio, row.ratio_low, row.ratio_high), p=_p_text(row.p),
        verdict=row.verdict, word=COMPARISON_WORDS.get(row.verdict, ""),
        rel_change=change_text(row.rel_ratio, row.rel_low, row.rel_high),
        rel_word=COMPARISON_WORDS.get(row.rel_verdict, ""),
    ) for row in comparison.changes.itertuples()]


def comparison_summary_rows(comparison: Comparison) -> list[list[str]]:
    """Per folder and metric: the pairs compared, the geometric mean of the changes, and how
    many were better, worse, the same and undecided."""
    return [[row.folder, COMPARED_METRICS[row.metric].label, str(row.pairs),
             change_text(row.geomean, np.nan, np.nan) or "-", *(str(getattr(row, verdict)) for verdict in VERDICTS)]
            for row in comparison.summary.itertuples()]


SUMMARY_HEADER = ["folder", "metric", "pairs", "geomean", *(COMPARISON_WORDS[verdict] for verdict in VERDICTS)]


def note_lines(comparison: Comparison) -> list[str]:
    """One line per cell x target of a folder that was not compared, or compared with a caveat."""
    return [f"{row.folder}: {row.cell} / {row.target}: {row.note}" for row in comparison.notes.itertuples()]


def only_lines(comparison: Comparison) -> list[str]:
    """One line per cell x target that some folders lack."""
    return [f"{row.cell} / {row.target}: in {', '.join(row.present_in)}; not in {', '.join(row.missing_in)}"
            for row in comparison.only.itertuples()]


def verdict_lines(analysis: Analysis) -> list[str]:
    """Per section, where passthrough is faster than plain FUSE, unchanged or slower (one line each)."""
    lines = []
    several = analysis.summary.loc[analysis.summary["target_type"] == "passthrough", "target"].nunique() > 1
    for row in analysis.verdicts.itertuples():
        parts = []
        for verdict in PASSTHROUGH_VERDICTS:
            cells = getattr(row, f"{verdict}_cells")
            if not cells:
                continue
            named = ", ".join(f"{cell}{f' ({target})' if several else ''} {ratio:.2f}x" for cell, target, ratio in cells) \
                if verdict in (FASTER, SLOWER) else ""
            parts.append(f"{verdict} in {len(cells)}" + (f" ({named})" if named else ""))
        lines.append(f"{row.section}: {'; '.join(parts)}")
    return lines


OPENING_OPCODES = ("OPEN", "CREATE")


@dataclass(frozen=True)
class PerOpRow:
    """FUSE requests per operation of one cell x target, as text: the total and the main opcodes."""

    cell: str
    target: str
    per_op: str
    per_file: str
    per_mib: str
    ops: str            # operations per run
    opens: str          # OPEN and CREATE requests per run: the files the daemon opened
    backing_opens: str  # passthrough backing files registered per operation ("" when not the built-in server)
    opcodes: str        # "LOOKUP 1.0, OPEN 1.0, ...; ioctls: BACKING_OPEN 4.2 us, ..." (requests per operation)


def per_op_rows(analysis: Analysis, top: int = 5) -> list[PerOpRow]:
    """Requests per operation, file and MiB for every cell x FUSE target that counted them."""
    rows = []
    work = analysis.work.set_index(["cell", "target"])
    for (cell, target), frame in analysis.per_op.groupby(["cell", "target"], sort=False):
        done = work.loc[(cell, target)] if (cell, target) in work.index else None
        main = frame.head(top)
        opcodes = ", ".join(f"{op} {format_number(n)}" for op, n in zip(main["opcode"], main["per_op"]))
        if len(frame) > top:
            opcodes += f", {len(frame) - top} more"
        if done is not None and pd.notna(done["backing_open_us"]):
            opcodes += f"; ioctls: BACKING_OPEN {format_number(done['backing_open_us'])} us"
            if pd.notna(done["backing_close_us"]):
                opcodes += f", BACKING_CLOSE {format_number(done['backing_close_us'])} us"
        rows.append(PerOpRow(cell=cell, target=target, per_op=format_number(frame["per_op"].sum()),
                             per_file=format_number(frame["per_file"].sum()),
                             per_mib=format_number(frame["per_mib"].sum(min_count=1)),
                             ops=format_number(done["ops"]) if done is not None else "-",
                             opens=format_number(frame.loc[frame["opcode"].isin(OPENING_OPCODES), "per_run"].sum()),
                             backing_opens=format_number(done["backing_opens_per_op"]) if done is not None else "-",
                             opcodes=opcodes))
    return rows


@dataclass(frozen=True)
class SweepTable:
    """One sweep curve as text: per swept value, each target's median and its interval."""

    title: str          # "randread-4k (numjobs=2): IOPS against iodepth, log scale"
    key: str            # the swept key: the first column
    coverage: str       # the intervals' coverage: "75%", or "75%-94.5%" when the runs differ
    targets: list[str]
    rows: list[tuple[str, list[tuple[str, str]]]]  # (swept value, (median, interval) per target; "-" where none)


def sweep_tables(analysis: Analysis) -> list[SweepTable]:
    """Every curve of `analysis.sweeps`, in its order, its values ascending."""
    tables = []
    for (workload, panel), points in analysis.sweeps.groupby(["workload", "panel"], sort=False):
        targets = [t for t in analysis.results.targets if t in set(points["target"])]
        first = points.iloc[0]
        rows = []
        for _, at in points.groupby("x", sort=True):
            by_target = at.set_index("target")
            rows.append((at["x_label"].iloc[0], [
                (format_number(by_target.at[t, "median"]), ci_text(by_target.at[t, "ci_low"], by_target.at[t, "ci_high"]))
                if t in by_target.index else ("-", "") for t in targets]))
        levels = points["ci_level"].dropna()
        coverage = "-".join(dict.fromkeys(coverage_text(level) for level in (levels.min(), levels.max()))) \
            if len(levels) else ""
        title = (f"{workload}{f' ({panel})' if panel else ''}: {first.unit} against {first.key}"
                 f"{', log scale' if first.scale == 'log' else ''}")
        tables.append(SweepTable(title=title, key=first.key, coverage=coverage,
                                 targets=targets, rows=rows))
    return tables
