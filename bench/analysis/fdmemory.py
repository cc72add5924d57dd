"""What fd pressure costs at scale, per configuration (target/policy): kernel memory per open file
as least-squares slopes against the files opened, and the figures a reader would quote (files
per GiB of kernel memory, the largest N held, open latency at scale, what stays after the close
and how long each release took). Pure functions of analysis.fd_steps (status ok steps only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.load import GIB, numeric
from bench.analysis.statistics import linear_fit

# quantity -> (fd_pressure.csv column, factor to the unit, unit). Held-phase figures (growth
# while the N files are held) but for idle_slab_bytes (what stays after the close).
FD_MEMORY_QUANTITIES = {
    "slab_bytes": ("slab_bytes", 1, "bytes"),
    "meminfo_slab": ("meminfo_slab_kib", 1024, "bytes"),
    "meminfo_sunreclaim": ("meminfo_sunreclaim_kib", 1024, "bytes"),
    "file_objects": ("file_objects", 1, "objects"),
    "backing_file_objects": ("backing_file_objects", 1, "objects"),
    "dentry_objects": ("dentry_objects", 1, "objects"),
    "fuse_inode_objects": ("fuse_inode_objects", 1, "objects"),
    "backing_inode_objects": ("backing_inode_objects", 1, "objects"),
    "idle_slab_bytes": ("idle_slab_bytes", 1, "bytes"),
}
FD_MEMORY_UNITS = ("bytes", "objects")
# The slope and its interval are per 1,000 files opened; intercept in the unit; n points fitted.
FD_MEMORY_COLUMNS = ["config", "quantity", "unit", "slope_per_1000", "slope_low", "slope_high", "intercept", "r2", "n"]
PER = 1000


def fd_memory(steps: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration and FD_MEMORY_QUANTITIES: the least-squares line of the quantity against
    `opened` over the configuration's steps (pooled over release methods: the held phase is the
    same experiment whatever releases it). Points without a value are left out; a quantity with
    fewer than 2 points (or one N only) has no row."""
    if steps.empty or "opened" not in steps:
        return pd.DataFrame(columns=FD_MEMORY_COLUMNS)
    rows = []
    for config, frame in steps.groupby("config", sort=False):
        opened = numeric(frame, "opened").to_numpy()
        for quantity, (column, factor, unit) in FD_MEMORY_QUANTITIES.items():
            fit = linear_fit(opened, numeric(frame, column).to_numpy() * factor, confidence)
            if fit is None:
                continue
            rows.append({"config": config, "quantity": quantity, "unit": unit, "slope_per_1000": fit.slope * PER,
                         "slope_low": fit.slope_low * PER, "slope_high": fit.slope_high * PER,
                         "intercept": fit.intercept, "r2": fit.r2, "n": fit.n})
    return pd.DataFrame(rows, columns=FD_MEMORY_COLUMNS)


# Per configuration. max_held: the largest N whose opens all succeeded; at_n: the same N, where
# the latency and what stays after the close are read (medians over its release methods);
# *_bytes_per_file: the slope per file of slab_bytes and of /proc/meminfo's Slab, with the fit's
# r2 (with one N only, the slab bytes per file measured at at_n, r2 empty); files_per_gib*:
# 2^30 over that; bfilp_bytes_per_file: the backing-file slab (bfilp) bytes per opened file at
# at_n, passthrough only (kernel_bytes_per_file: what folders before format 7 have of kernel
# memory); idle_bytes_per_file: fd_steps' idle_slab_bytes / opened at at_n; file_nr_noise: the
# largest file_nr_noise at at_n (how far idle_hidden_files, a file-nr difference, may be off
# beyond the counter's own error).
FD_FIGURE_COLUMNS = ["config", "max_held", "first_failed_n", "errno", "at_n", "slab_bytes_per_file", "slab_r2",
                     "files_per_gib", "meminfo_bytes_per_file", "meminfo_r2", "files_per_gib_meminfo",
                     "bfilp_bytes_per_file", "open_p50_us", "open_p99_us", "opens_per_s", "idle_ids",
                     "idle_hidden_files", "idle_backing_file_objects", "idle_bytes_per_file", "closed_ids",
                     "file_nr_noise"]
_AT_N = ("open_p50_us", "open_p99_us", "opens_per_s", "idle_ids", "idle_hidden_files", "idle_backing_file_objects",
         "idle_bytes_per_file", "closed_ids")


def _per_gib(per_file: float) -> float:
    return GIB / per_file if per_file > 0 else np.nan


def fd_figures(steps: pd.DataFrame, memory: pd.DataFrame, limits: pd.DataFrame) -> pd.DataFrame:
    """The figures a reader would quote, per configuration (FD_FIGURE_COLUMNS), from the steps,
    their fd_memory() fits and their fd_limits()."""
    if steps.empty:
        return pd.DataFrame(columns=FD_FIGURE_COLUMNS)
    fits = memory.set_index(["config", "quantity"]) if not memory.empty else None
    limit = limits.set_index("config") if not limits.empty else None
    rows = []
    for config, frame in steps.groupby("config", sort=False):
        row: dict = {"config": config, "errno": ""}
        if limit is not None and config in limit.index:
            mine = limit.loc[config]
            row.update(max_held=mine["max_ok"], first_failed_n=mine["first_failed_n"], errno=mine["errno"] or "")
        at_n = row.get("max_held", np.nan)
        there = frame[frame["open_files"] == at_n] if pd.notna(at_n) else frame.iloc[:0]
        row["at_n"] = at_n
        for name, quantity in (("slab", "slab_bytes"), ("meminfo", "meminfo_slab")):
            fit = fits.loc[(config, quantity)] if fits is not None and (config, quantity) in fits.index else None
            per_file = fit["slope_per_1000"] / PER if fit is not None else np.nan
            # One N only: no fit, the slab bytes per file measured there.
            if name == "slab" and np.isnan(per_file):
                per_file = numeric(there, "slab_bytes_per_file").median()
            row[f"{name}_bytes_per_file"] = per_file
            row[f"{name}_r2"] = fit["r2"] if fit is not None else np.nan
            row["files_per_gib" + ("_meminfo" if name == "meminfo" else "")] = _per_gib(per_file)
        passthrough = there[there["target_type"] == "passthrough"] if "target_type" in there else there.iloc[:0]
        row["bfilp_bytes_per_file"] = numeric(passthrough, "kernel_bytes_per_file").median()
        for column in _AT_N:
            row[column] = numeric(there, column).median()
        row["file_nr_noise"] = numeric(there, "file_nr_noise").max()
        rows.append(row)
    return pd.DataFrame(rows, columns=FD_FIGURE_COLUMNS)


# Per configuration and release method, at the largest N released that way: the time the release
# took, what was idle before it and the backing ids the server had closed, and whether every count came back.
FD_RELEASE_COLUMNS = ["config", "release", "open_files", "release_s", "idle_ids", "closed_ids", "returned_to_baseline"]


def fd_releases(steps: pd.DataFrame) -> pd.DataFrame:
    """Each configuration's release methods at the largest N each released (FD_RELEASE_COLUMNS);
    empty for folders before the release column (format 7)."""
    if steps.empty or "release" not in steps or steps["release"].isna().all():
        return pd.DataFrame(columns=FD_RELEASE_COLUMNS)
    rows = []
    for (config, release), frame in steps.dropna(subset=["release"]).groupby(["config", "release"], sort=False):
        largest = frame[frame["open_files"] == frame["open_files"].max()].iloc[-1]
        rows.append({"config": config, "release": release, "open_files": largest["open_files"],
                     **{column: largest.get(column, np.nan) for column in FD_RELEASE_COLUMNS[3:]}})
    frame = pd.DataFrame(rows, columns=FD_RELEASE_COLUMNS)
    return frame.astype({"release_s": "float64", "returned_to_baseline": "boolean"})
