"""matplotlib charts rendered to small inline SVG strings (text stays text, no metadata)."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from bench.analysis import CPU_PARTS, Analysis  # noqa: E402
from bench.analysis.fdmemory import FD_MEMORY_QUANTITIES
from bench.analysis.load import LOWER_IS_BETTER
from bench.analysis.metrics import usable_runs
from bench.analysis.timeline import representative_runs
from bench.records import STATUS_OK
from bench.report.fdrows import FD_QUANTITY_LABELS

MAX_PANELS = 12          # small multiples beyond this would make the page heavy and unreadable
MAX_POINTS = 120         # per time-series line
TYPE_COLOURS = {"native": "#6b6b6b", "fuse": "#d9822b", "passthrough": "#2b6cb0", "external": "#2f855a"}
EXTRA_COLOURS = ("#805ad5", "#b83280", "#319795", "#975a16")
# One per folder of a comparison (the base has no bar).
FOLDER_COLOURS = ("#2b6cb0", "#d9822b", "#2f855a", *EXTRA_COLOURS)
PART_COLOURS = {"fio_user_s": "#90cdf4", "fio_sys_s": "#2b6cb0", "daemon_user_s": "#fbd38d", "daemon_sys_s": "#c05621"}
OUTLIER_COLOUR = "#c53030"
PART_LABELS = {"fio_user_s": "fio user", "fio_sys_s": "fio sys", "daemon_user_s": "daemon user", "daemon_sys_s": "daemon sys"}

plt.rcParams.update({
    "svg.fonttype": "none",      # text as <text>, not paths: a fraction of the size
    "svg.hashsalt": "fusebench",  # stable ids, reproducible files
    "font.size": 8,
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 72,
})


def to_svg(fig) -> str:
    """The figure as an <svg> element (no XML prolog, DOCTYPE or metadata: nothing refers outside)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    # Six-decimal coordinates and indentation are most of the bytes; 0.01 pt is invisible.
    svg = _GEOMETRY.sub(lambda m: m.group(1) + _NUMBER.sub(_round, m.group(2)) + '"', svg)
    return re.sub(r">\s+<", "><", re.sub(r"\s*\n\s*", " ", svg))


_GEOMETRY = re.compile(r'(\s(?:d|x|y|x1|x2|y1|y2|width|height|transform|viewBox)=")([^"]*)"')
_NUMBER = re.compile(r"-?\d+\.\d{3,}")


def _round(match: re.Match) -> str:
    return f"{float(match.group()):.2f}".rstrip("0").rstrip(".")


def target_colours(analysis: Analysis) -> dict[str, str]:
    """One colour per target: by type for the first of each type, then distinct extras."""
    colours: dict[str, str] = {}
    extras = iter(EXTRA_COLOURS * 4)
    used: set[str] = set()
    for target in analysis.results.targets:
        colour = TYPE_COLOURS.get(analysis.results.target_types.get(target, ""))
        if colour is None or colour in used:
            colour = next(extras)
        used.add(colour)
        colours[target] = colour
    return colours


def _grid(count: int, columns: int = 3, size: tuple[float, float] = (3.6, 2.4)):
    rows = max(1, -(-count // columns))
    cols = min(columns, max(count, 1))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    # Fixed spacing: constrained layout costs several seconds on a big report.
    fig.subplots_adjust(hspace=0.6, wspace=0.35)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def relative_throughput(analysis: Analysis) -> str | None:
    """Horizontal bars: each target's speed as a ratio of the baseline's, with the interval as
    error bars, and every run as a dot (outliers in red)."""
    baseline = analysis.baseline
    summary = analysis.summary[analysis.summary["n"] > 0]
    if baseline is None or summary.empty:
        return None
    colours = target_colours(analysis)
    cells = list(dict.fromkeys(summary["cell"]))
    targets = [t for t in analysis.results.targets if t in set(summary["target"])]
    height = 0.8 / len(targets)
    dots = run_ratios(analysis)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.28 * len(cells) * len(targets)))
    for i, target in enumerate(targets):
        rows = summary[summary["target"] == target].set_index("cell").reindex(cells)
        ratio = rows["vs_baseline_ratio"].where(rows["target"] != baseline, 1.0)
        low = (ratio - rows["vs_baseline_ratio_low"]).clip(lower=0).fillna(0)
        high = (rows["vs_baseline_ratio_high"] - ratio).clip(lower=0).fillna(0)
        y = np.arange(len(cells)) + i * height
        ax.barh(y, ratio.fillna(0), height, xerr=[low, high], color=colours[target], label=target, alpha=0.85,
                error_kw={"elinewidth": 0.8, "capsize": 2})
        mine = dots[dots["target"] == target]
        rank = {cell: position for position, cell in enumerate(cells)}
        ys = mine["cell"].map(rank) + i * height
        _run_dots(ax, mine["ratio"], ys, mine["outlier"])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(np.arange(len(cells)) + height * (len(targets) - 1) / 2, cells)
    ax.invert_yaxis()
    ax.set_xlabel(f"speed relative to {baseline} ({analysis.settings.confidence:.0%} interval; dots: runs, "
                  "red: outliers)")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), frameon=False, ncols=len(targets))
    return to_svg(fig)


def run_ratios(analysis: Analysis) -> pd.DataFrame:
    """Every good run's speed relative to the geometric mean of its cell's baseline runs."""
    runs = analysis.results.runs
    good = runs[(runs["status"] == STATUS_OK) & runs["value"].notna() & (runs["value"] > 0)]
    base = good[good["target"] == analysis.baseline].groupby("cell")["value"].apply(lambda v: np.exp(np.log(v).mean()))
    scale = good["cell"].map(base)
    ratio = (good["value"] / scale).where(~good["metric"].isin(LOWER_IS_BETTER), scale / good["value"])
    return pd.DataFrame({"cell": good["cell"], "target": good["target"], "ratio": ratio,
                         "outlier": good["outlier"].astype(bool)}).dropna(subset=["ratio"])


def _run_dots(ax, x, y, outlier, colour="black") -> None:
    """Every run as a dot (`colour`: one, or one per run), outliers in red."""
    ax.scatter(x, y, s=6, color=np.where(outlier, OUTLIER_COLOUR, colour), zorder=3)


def absolute_figures(analysis: Analysis) -> str | None:
    """One panel per cell: each target's median in the cell's own unit, with the median's
    interval as error bars and every good run as a dot (outliers in red)."""
    summary = analysis.summary[analysis.summary["n"] > 0]
    if summary.empty:
        return None
    colours = target_colours(analysis)
    cells = list(dict.fromkeys(summary["cell"]))[:MAX_PANELS]
    runs = usable_runs(analysis.results.runs)
    fig, axes = _grid(len(cells), size=(2.5, 2.1))
    for ax, cell in zip(axes, cells):
        rows = summary[summary["cell"] == cell]
        x = np.arange(len(rows))
        low = (rows["median"] - rows["ci_low"]).clip(lower=0).fillna(0)
        high = (rows["ci_high"] - rows["median"]).clip(lower=0).fillna(0)
        ax.bar(x, rows["median"], 0.7, yerr=[low, high], color=[colours.get(t, "black") for t in rows["target"]],
               alpha=0.85, error_kw={"elinewidth": 0.8, "capsize": 2})
        mine = runs[runs["cell"] == cell]
        _run_dots(ax, mine["target"].map(dict(zip(rows["target"], x))), mine["value"], mine["outlier"])
        ax.set_xticks(x, rows["target"], rotation=20, ha="right")
        ax.grid(axis="x", visible=False)
        ax.set_title(cell, fontsize=8)
        less = " (less is better)" if rows["metric"].iloc[0] in LOWER_IS_BETTER else ""
        ax.set_ylabel(rows["unit"].iloc[0] + less)
    return to_svg(fig)


def sweep_curves(analysis: Analysis) -> str | None:
    """One panel per sweep curve: each target's median against the swept value, the median's
    interval as a band and every good run as a dot in its target's colour (outliers in red), on
    a log axis where the values grow geometrically (analysis.sweeps says which)."""
    points = analysis.sweeps
    if points.empty:
        return None
    colours = target_colours(analysis)
    by_curve = dict(iter(points.groupby(["workload", "panel"], sort=False)))
    runs = dict(iter(analysis.sweep_runs.groupby(["workload", "panel"], sort=False)))
    curves = list(by_curve)[:MAX_PANELS]
    fig, axes = _grid(len(curves))
    for ax, (workload, panel) in zip(axes, curves):
        frame = by_curve[(workload, panel)]
        for target, line in frame.groupby("target", sort=False):
            colour = colours.get(target, "black")
            # No markers: the runs' dots are the points, the line's corners the medians.
            ax.plot(line["x"], line["median"], color=colour, linewidth=1.2, label=target)
            ax.fill_between(line["x"], line["ci_low"], line["ci_high"], color=colour, alpha=0.15, linewidth=0)
        dots = runs.get((workload, panel))
        if dots is not None:
            _run_dots(ax, dots["x"], dots["value"], dots["outlier"], dots["target"].map(colours).fillna("black"))
        first, ticks = frame.iloc[0], frame.drop_duplicates("x").sort_values("x")
        if first.scale == "log":
            ax.set_xscale("log")
        ax.set_xticks(ticks["x"], ticks["x_label"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_ylim(bottom=0)
        ax.set_xlabel(first.key + (" (log scale)" if first.scale == "log" else ""))
        ax.set_ylabel(first.unit)
        ax.set_title(f"{workload} ({panel})" if panel else workload, fontsize=8)
    axes[0].legend(fontsize=6, frameon=False)
    return to_svg(fig)


def latency_curves(analysis: Analysis) -> str | None:
    """Latency percentile curves per cell (bins summed over repetitions), one line per target and direction."""
    latency = analysis.latency
    if latency.empty:
        return None
    colours = target_colours(analysis)
    cells = list(dict.fromkeys(latency["cell"]))[:MAX_PANELS]
    fig, axes = _grid(len(cells))
    for ax, cell in zip(axes, cells):
        for (target, direction), frame in latency[latency["cell"] == cell].groupby(["target", "direction"], sort=False):
            # x: the "nines" scale, so p99 and p99.9 are as far apart as p90 and p99
            x = -np.log10(1 - frame["percentile"].to_numpy() / 100)
            ax.plot(x, frame["latency_us"], color=colours.get(target, "black"), marker=".", markersize=3,
                    linestyle="-" if direction in ("read", "open") else "--", label=f"{target} {direction}")
        ticks = [50, 90, 99, 99.9, 99.99]
        ax.set_xticks([-np.log10(1 - p / 100) for p in ticks], [f"{p:g}" for p in ticks])
        ax.set_xlabel("percentile")
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title(cell, fontsize=8)
        ax.set_ylabel("latency (us)")
        ax.legend(fontsize=6, frameon=False)
    return to_svg(fig)


def cpu_per_gib(analysis: Analysis) -> str | None:
    """Stacked bars: CPU seconds per GiB by process and user/sys, per cell x target."""
    cpu = analysis.cpu.dropna(subset=["total_s_per_gib"])
    if cpu.empty:
        return None
    labels = [f"{c} / {t}" for c, t in zip(cpu["cell"], cpu["target"])]
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.22 * len(cpu)))
    left = np.zeros(len(cpu))
    for part in CPU_PARTS:
        values = cpu[f"{part}_per_gib"].fillna(0).to_numpy()
        ax.barh(labels, values, left=left, color=PART_COLOURS[part], label=PART_LABELS[part], height=0.7)
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("CPU seconds per GiB moved")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), frameon=False, ncols=4)
    return to_svg(fig)


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    step = max(1, -(-len(frame) // MAX_POINTS))
    return frame.iloc[::step]


def time_series(analysis: Analysis) -> str | None:
    """Throughput (from fio's logs), CPU % (workload + daemon) and daemon fds over time, for
    each cell's representative runs."""
    samples = analysis.results.samples
    picked = representative_runs(analysis.results.runs)
    picked = picked[picked["cell"].isin(list(dict.fromkeys(picked["cell"]))[: MAX_PANELS // 2])]
    if not samples.empty and {"run_id", "t_s", "role"} <= set(samples.columns):
        wanted = samples[samples["run_id"].isin(set(picked["run_id"]))
                         & samples["role"].isin(["fio", "program", "daemon"])]
    else:
        wanted = pd.DataFrame()
    logged = analysis.timeline[analysis.timeline["run_id"].isin(set(picked["run_id"]))]
    if wanted.empty and logged.empty:
        return None
    colours = target_colours(analysis)
    cells = list(dict.fromkeys(picked["cell"]))
    panels = ["throughput"] * (not logged.empty) + ["cpu", "fds"]
    fig, axes = plt.subplots(len(cells), len(panels), figsize=(3.75 * len(panels), 1.9 * len(cells)), squeeze=False)
    fig.subplots_adjust(hspace=0.6, wspace=0.25)
    by_run = {run_id: frame for run_id, frame in wanted.groupby("run_id", sort=False)} if not wanted.empty else {}
    logs = {run_id: frame for run_id, frame in logged.groupby("run_id", sort=False)}
    for row, cell in zip(axes, cells):
        panel = dict(zip(panels, row))
        mine = picked[picked["cell"] == cell]
        for run in mine.itertuples():
            colour = colours.get(run.target, "black")
            if run.run_id in logs:
                points = _thin(logs[run.run_id].sort_values("t_s"))
                panel["throughput"].plot(points["t_s"], points["value"], color=colour, linewidth=1, label=run.target)
            frame = by_run.get(run.run_id)
            if frame is None:
                continue
            if "cpu_pct" in frame:
                cpu = _thin(frame.groupby("t_s", sort=True)["cpu_pct"].sum(min_count=1).reset_index())
                panel["cpu"].plot(cpu["t_s"], cpu["cpu_pct"], color=colour, linewidth=1, label=run.target)
            daemon = frame[frame["role"] == "daemon"]
            if "num_fds" in daemon and daemon["num_fds"].notna().any():
                daemon = _thin(daemon.sort_values("t_s"))
                panel["fds"].plot(daemon["t_s"], daemon["num_fds"], color=colour, linewidth=1, label=run.target)
        if "throughput" in panel:
            shown = mine["run_id"].isin(set(logs))
            panel["throughput"].set_title(f"{cell}: {mine['unit'][shown].iloc[0]} (fio log)" if shown.any()
                                       else f"{cell}: no fio log", fontsize=8)
            panel["throughput"].set_ylim(bottom=0)  # a stall reads as a fall to zero, not a rescaled wiggle
        panel["cpu"].set_title(f"{cell}: workload + daemon CPU %", fontsize=8)
        panel["fds"].set_title(f"{cell}: daemon open fds", fontsize=8)
        labelled = next((a for a in row if a.lines), None)
        if labelled is not None:
            labelled.legend(fontsize=6, frameon=False)
    for ax in axes[-1]:
        ax.set_xlabel("seconds into the run")
    return to_svg(fig)


def fd_pressure(frame: pd.DataFrame) -> str | None:
    """Visible and hidden fds, open latency and memory per open file against N, per configuration
    (`frame`: analysis.fd_steps)."""
    if frame.empty:
        return None
    frame = frame.copy()
    opened = pd.to_numeric(frame.get("opened"), errors="coerce").replace(0, np.nan)
    frame["rss_per_file"] = pd.to_numeric(frame.get("daemon_rss_delta_kib"), errors="coerce") * 1024 / opened
    panels = [
        ("daemon_fds_delta", "visible: daemon fds"),
        ("hidden_files", "hidden: unowned registered files"),
        ("backing_file_objects", "hidden: backing file objects"),
        ("open_p99_us", "open() p99 (us)"),
        ("kernel_bytes_per_file", "bfilp bytes per open file"),
        ("rss_per_file", "daemon RSS bytes per open file"),
    ]
    panels = [(column, title) for column, title in panels if column in frame and frame[column].notna().any()]
    fig, axes = _grid(len(panels), size=(2.6, 2.1))
    for ax, (column, title) in zip(axes, panels):
        for config, rows in frame.groupby("config", sort=False):
            ax.plot(rows["open_files"], pd.to_numeric(rows[column], errors="coerce"), marker="o", markersize=3,
                    linewidth=1, label=config)
            if column == "open_p99_us" and "open_p50_us" in rows:
                ax.plot(rows["open_files"], rows["open_p50_us"], linestyle=":", linewidth=1, color=ax.lines[-1].get_color())
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("N files opened")
    axes[0].legend(fontsize=6, frameon=False)
    return to_svg(fig)


# Who can see the open files, per configuration (colour, label): counts against N.
# Markers and line styles differ too: views that count the same files coincide.
FD_VIEWS = {"visible_fds": ("#2b6cb0", "visible fds (lsof)", "o", "-"),
            "hidden_files": ("#c05621", "hidden files", "s", "--"),
            "backing_file_objects": ("#805ad5", "bfilp objects", "^", ":"),
            "idle_ids": ("#2f855a", "idle ids after close", "D", "-.")}
# Kernel memory against N, MiB: (column, factor to bytes, colour, label), from fd_memory's quantities.
FD_MEMORY_LINES = tuple((*FD_MEMORY_QUANTITIES[quantity][:2], colour, FD_QUANTITY_LABELS[quantity])
                        for quantity, colour in (("slab_bytes", "#2b6cb0"), ("meminfo_slab", "#d9822b"),
                                                 ("idle_slab_bytes", "#2f855a")))


def _positive(frame: pd.DataFrame, column: str, factor: float = 1.0) -> pd.Series:
    """The median of `column` x factor at each N (releases of one N pooled), positive values only:
    what a log axis can show (growth can be zero or negative)."""
    values = pd.to_numeric(frame[column], errors="coerce") * factor if column in frame else None
    if values is None:
        return pd.Series(dtype="float64")
    by_n = values.groupby(pd.to_numeric(frame["open_files"], errors="coerce")).median()
    return by_n[by_n > 0]


def fd_views(frame: pd.DataFrame) -> str | None:
    """One panel per configuration (`frame`: analysis.fd_steps): visible fds, hidden files, bfilp
    objects and idle backing ids against N; below it, kernel slab memory in MiB. Log axes; zero
    and negative points are left out. None when the folder has neither view (before format 7)."""
    if frame.empty or not any(column in frame and frame[column].notna().any()
                              for column in ("visible_fds", "slab_bytes", "meminfo_slab_kib")):
        return None
    configs = list(dict.fromkeys(frame["config"]))[:MAX_PANELS // 2]
    # Shared axes: configurations compare at a glance, and one with a single N still shows its scale.
    fig, axes = plt.subplots(2, len(configs), figsize=(2.6 * len(configs), 4.4), squeeze=False, sharex=True,
                             sharey="row")
    fig.subplots_adjust(hspace=0.45, wspace=0.35)
    for index, config in enumerate(configs):
        mine = frame[frame["config"] == config]
        top, bottom = axes[0][index], axes[1][index]
        for column, (colour, label, marker, style) in FD_VIEWS.items():
            points = _positive(mine, column)
            if not points.empty:
                top.plot(points.index, points.to_numpy(), color=colour, marker=marker, markersize=4, linewidth=1,
                         linestyle=style, fillstyle="none", label=label)
        for column, factor, colour, label in FD_MEMORY_LINES:
            points = _positive(mine, column, factor / (1 << 20))
            if not points.empty:
                bottom.plot(points.index, points.to_numpy(), color=colour, marker="o", markersize=3, linewidth=1,
                            label=label)
        top.set_title(config, fontsize=8)
        top.set_ylabel("files" if index == 0 else "")
        bottom.set_ylabel("kernel memory (MiB)" if index == 0 else "")
        bottom.set_xlabel("N files opened")
        top.tick_params(labelbottom=True)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
            if ax.lines:
                ax.set_yscale("log")
                ax.yaxis.set_minor_locator(NullLocator())
            else:
                ax.text(0.5, 0.5, "nothing above zero", transform=ax.transAxes, ha="center", va="center", fontsize=7)
    for row in axes:
        labelled = next((ax for ax in row if ax.lines), None)
        if labelled is not None:
            handles = {line.get_label(): line for ax in row for line in ax.lines}
            labelled.legend(list(handles.values()), list(handles), fontsize=6, frameon=False)
    return to_svg(fig)


def comparison_changes(comparison) -> str | None:
    """Horizontal bars of each folder's change of the primary metric against the base folder, with
    its interval, one colour per folder, pale where not decided better or worse."""
    from bench.analysis.compare import PRIMARY

    changes = comparison.changes[comparison.changes["metric"] == PRIMARY]
    if changes.empty:
        return None
    folders = [name for name in comparison.names[1:] if name in set(changes["folder"])]
    pairs = list(dict.fromkeys(zip(changes["cell"], changes["target"])))
    height = 0.8 / len(folders)
    palette = FOLDER_COLOURS
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.22 * len(pairs) * max(1, len(folders) * 0.7)))
    for i, folder in enumerate(folders):
        mine = changes[changes["folder"] == folder].set_index(["cell", "target"]).reindex(pairs)
        change = (mine["ratio"] - 1) * 100
        low = (change - (mine["ratio_low"] - 1) * 100).clip(lower=0).fillna(0)
        high = ((mine["ratio_high"] - 1) * 100 - change).clip(lower=0).fillna(0)
        decided = mine["significant"].fillna(False).astype(bool).to_numpy()
        colour = palette[i % len(palette)]
        ax.barh(np.arange(len(pairs)) + i * height, change.fillna(0), height, xerr=[low, high],
                color=[to_rgba(colour, 0.9 if sure else 0.3) for sure in decided], label=folder,
                error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(np.arange(len(pairs)) + height * (len(folders) - 1) / 2, [f"{c} / {t}" for c, t in pairs])
    ax.invert_yaxis()
    ax.set_xlabel(f"change against {comparison.names[0]} (%), {comparison.settings.compare_confidence:.0%} interval")
    handles = [Patch(color=palette[i % len(palette)], label=folder) for i, folder in enumerate(folders)]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1), frameon=False, ncols=min(len(folders), 4))
    return to_svg(fig)
