"""fd pressure in words and table rows, shared by the text and HTML reports: the figures a reader
would quote per configuration (analysis.fd_figures, fd_releases), who can see the open files,
and the per-step tables (format 7 columns where the folder has them, else the older ones)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.analysis import Analysis
from bench.fdpressure.derive import SLAB_TOLERANCE, file_nr_error
from bench.report.rows import format_number, is_number

# fs.file-max at or above this is the kernel's "no limit" (LONG_MAX on 64-bit).
UNLIMITED_FILE_MAX = 2**62
# A figure within this many times its tolerance is quoted as "about".
ROUGH = 10
# fd_memory's quantities (analysis.fdmemory.FD_MEMORY_QUANTITIES) as the reports name them: the
# HTML table of slopes and the chart's kernel-memory lines.
FD_QUANTITY_LABELS = {"slab_bytes": "tracked slabs", "meminfo_slab": "meminfo Slab", "meminfo_sunreclaim":
                      "meminfo SUnreclaim", "file_objects": "filp objects", "backing_file_objects": "bfilp objects",
                      "dentry_objects": "dentry objects", "fuse_inode_objects": "fuse_inode objects",
                      "backing_inode_objects": "backing inode objects", "idle_slab_bytes": "still cached after close"}


def format_count(value) -> str:
    """A count with thousands separators ('1,000,000'); '-' when unknown."""
    return f"{int(round(float(value))):,}" if is_number(value) else "-"


def three_figures(value) -> str:
    """A large figure to 3 significant digits with separators ('362,000'); small ones as format_number."""
    if not is_number(value):
        return "-"
    value = float(value)
    if abs(value) < 1000:
        return format_number(value)
    digits = int(math.floor(math.log10(abs(value)))) - 2
    return f"{int(round(value / 10**digits) * 10**digits):,}"


def format_bytes(value) -> str:
    """Bytes in B, KiB, MiB or GiB with 3 significant digits ('480 B', '2.93 KiB', '1.02 MiB')."""
    if not is_number(value):
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "B":
        return f"{value:.0f} B"
    return f"{value:.3g} {unit}" if abs(value) < 1000 else f"{value:.0f} {unit}"


def _signed(value) -> str:
    return f"{int(value):+d}" if is_number(value) else ""


def _plain(value) -> str:
    return str(int(value)) if is_number(value) else ""


def has(frame: pd.DataFrame, column: str) -> bool:
    """Whether the frame has the column with a value in some row (older folders: empty)."""
    return column in frame and frame[column].notna().any()


def fd_sentences(analysis: Analysis) -> list[str]:
    """Per configuration, one sentence of what to quote: files held, kernel memory per file and
    files per GiB (the slope's r2; before format 7, the bfilp slab bytes per passthrough file),
    open latency at the largest N held, what stays after the close and how long each release
    method took."""
    releases = analysis.fd_releases
    lines = []
    for fig in analysis.fd_figures.itertuples():
        parts = [_held(fig)]
        per_file = fig.slab_bytes_per_file
        if is_number(per_file):
            if per_file > 0:
                fit = f", r2 {fig.slab_r2:.2f}" if is_number(fig.slab_r2) else f", at N={format_count(fig.at_n)}, no fit"
                parts.append(f"{format_bytes(per_file)} of slab per open file ({format_bytes(per_file * 1000)} per "
                             f"1,000{fit}) = {three_figures(fig.files_per_gib)} files per GiB")
            else:
                parts.append("no slab growth with the files held")
        elif is_number(fig.bfilp_bytes_per_file) and fig.bfilp_bytes_per_file > 0:   # before format 7
            parts.append(f"bfilp slab bytes per passthrough open file: {format_number(fig.bfilp_bytes_per_file)}")
        if is_number(fig.meminfo_bytes_per_file) and fig.meminfo_bytes_per_file > 0:
            parts.append(f"meminfo Slab {format_bytes(fig.meminfo_bytes_per_file)} per file = "
                         f"{three_figures(fig.files_per_gib_meminfo)} per GiB")
        if is_number(fig.at_n) and is_number(fig.open_p50_us):
            speed = f", {three_figures(fig.opens_per_s)} opens/s" if is_number(fig.opens_per_s) else ""
            parts.append(f"open p50 {format_number(fig.open_p50_us)} us, p99 {format_number(fig.open_p99_us)} us"
                         f"{speed} at N={format_count(fig.at_n)}")
        idle = _idle(fig, file_nr_error(_run_cpus(analysis)))
        if idle:
            parts.append(idle)
        parts.append(_released(releases[releases["config"] == fig.config]))
        lines.append(f"{fig.config}: " + "; ".join(part for part in parts if part))
    return lines


def _held(fig) -> str:
    failing = f"opens fail from N={format_count(fig.first_failed_n)}" + (f" ({fig.errno})" if fig.errno else "") \
        if is_number(fig.first_failed_n) else ""
    if is_number(fig.max_held):
        return f"{format_count(fig.max_held)} files held" + (f", {failing}" if failing else "")
    return f"no N held without a failed open; {failing}" if failing else ""


def _run_cpus(analysis: Analysis) -> int | None:
    """The CPUs of the machine that ran the steps (file-nr's error depends on them), when recorded."""
    manifest = analysis.results.manifest
    cpus = manifest.host.get("cpu_cores") if manifest is not None else None
    return cpus if isinstance(cpus, int) and cpus > 0 else None


def _idle(fig, file_nr_tolerance: int) -> str:
    """What stays after the close at the largest N held (empty for folders without the idle
    columns). hidden files (a file-nr difference) within `file_nr_tolerance` (the running
    machine's) plus the step's file_nr_noise and bfilp objects within SLAB_TOLERANCE are noise:
    none; a figure within ROUGH times its tolerance is 'about'."""
    noise = fig.file_nr_noise if is_number(fig.file_nr_noise) else 0
    counts = {"backing ids": (fig.idle_ids, 0), "hidden files": (fig.idle_hidden_files, file_nr_tolerance + noise),
              "bfilp objects": (fig.idle_backing_file_objects, SLAB_TOLERANCE)}
    if not any(is_number(value) for value, _ in counts.values()):
        return ""
    staying = [("about " if value <= ROUGH * tolerance else "") + f"{format_count(value)} {what}"
               for what, (value, tolerance) in counts.items() if is_number(value) and value > tolerance]
    text = f"after close {', '.join(staying)} stay" if staying else "nothing stays open after close"
    if is_number(fig.idle_bytes_per_file):
        text += f" ({format_bytes(fig.idle_bytes_per_file)} of slab per file still cached)"
    if is_number(fig.closed_ids) and fig.closed_ids > 0 and is_number(fig.idle_ids) and fig.idle_ids > 0:
        text += f"; the cache evicted {format_count(fig.closed_ids)} ids"
    return text


def _released(releases: pd.DataFrame) -> str:
    """'released at N=1,000,000: drop_caches 0.10 s, unmount 1.5 s' (N per method where they
    differ); a method that left idle ids in place says so; methods with nothing idle to release
    are left out, and with none left, nothing is said."""
    idle = pd.to_numeric(releases["idle_ids"], errors="coerce") > 0 if "idle_ids" in releases else False
    timed = releases[releases["release_s"].notna() | idle]
    if timed.empty:
        return ""
    sizes = set(timed["open_files"])
    each = []
    for row in timed.itertuples():
        where = f" at N={format_count(row.open_files)}" if len(sizes) > 1 else ""
        late = " (not back to baseline)" if is_number(row.returned_to_baseline) and not row.returned_to_baseline else ""
        took = f"{format_number(row.release_s)} s" if is_number(row.release_s) else "did not release them"
        each.append(f"{row.release} {took}{where}{late}")
    head = f"released at N={format_count(next(iter(sizes)))}: " if len(sizes) == 1 else "released by "
    return head + ", ".join(each)


def fd_view_notes(steps: pd.DataFrame) -> list[str]:
    """Who can see the open files, from the data: the kernel's own listing where it has one,
    whether the hidden files count against fs.file-max (they are in file-nr; bfilp objects are
    not) and against fs.nr_open (they are in no fd table). Only for folders with the format-7
    columns."""
    if not has(steps, "visible_fds"):
        return []
    notes = []
    if not has(steps, "kernel_listed"):
        notes.append("listed: n/a: no listing of a connection's backing files was read (this kernel has no "
                     "fusectl backing_files, or fusectl could not be read)")
    hidden = pd.to_numeric(steps["hidden_files"], errors="coerce") if "hidden_files" in steps else None
    most = steps.iloc[int(hidden.fillna(0).to_numpy().argmax())] if hidden is not None and (hidden > 0).any() else None
    if most is not None:
        notes.append("hidden files are allocated files (in file-nr), so they count against fs.file-max: "
                     f"{most['config']} at N={format_count(most['open_files'])} held "
                     f"{format_count(most['hidden_files'])} hidden" + _file_nr(most))
    elif hidden is not None and hidden.notna().any():
        notes.append("no hidden files: file-nr grew by the visible fds alone")
    nr_open = _nr_open(steps, most)
    if nr_open:
        notes.append(nr_open)
    bfilp = pd.to_numeric(steps["backing_file_objects"], errors="coerce") if "backing_file_objects" in steps else None
    if bfilp is not None and (bfilp > 0).any():
        notes.append(f"bfilp objects (up to {format_count(bfilp.max())}) are in no fd table and not in file-nr: "
                     "no limit counts them, only kernel memory")
    return notes


def _file_nr(step) -> str:
    """', file-nr 2,005,000 of fs.file-max 4,000,000 (50.1%)', as much of it as the step knows."""
    held, limit = step.get("file_nr_held"), step.get("file_max")
    if not is_number(held):
        return ""
    if not is_number(limit) or limit <= 0:
        return f", file-nr {format_count(held)}"
    of = "of an unlimited fs.file-max" if limit >= UNLIMITED_FILE_MAX else \
        f"of fs.file-max {format_count(limit)} ({held / limit:.1%})"
    return f", file-nr {format_count(held)} {of}"


def _nr_open(steps: pd.DataFrame, most) -> str:
    """fs.nr_open limits one fd table, so not the hidden files: with the largest table the step
    with the most hidden files needed (a client's share of the files, or the daemon's fds).
    Empty when no step knows nr_open."""
    if not has(steps, "nr_open") or most is None:
        return ""  # no hidden files: nothing for it to count
    head = "fs.nr_open {} (the ceiling of any process's RLIMIT_NOFILE) limits a single fd table; hidden files " \
           "are in none, so it does not count them"
    if not is_number(most.get("nr_open")):
        return head.format(format_count(pd.to_numeric(steps["nr_open"], errors="coerce").max()))
    head = head.format(format_count(most["nr_open"]))
    tables = []
    if is_number(most.get("opened")):
        clients = most.get("clients")
        clients = int(clients) if is_number(clients) and clients > 0 else 1
        tables.append((math.ceil(most["opened"] / clients),
                       "its client" if clients == 1 else f"one of {clients} clients"))
    if is_number(most.get("daemon_fds_before")) and is_number(most.get("daemon_fds_delta")):
        tables.append((most["daemon_fds_before"] + most["daemon_fds_delta"], "the daemon"))
    if not tables:
        return head
    size, whose = max(tables, key=lambda table: table[0])
    return (f"{head}: {most['config']} at N={format_count(most['open_files'])} held "
            f"{format_count(most['hidden_files'])} hidden while its largest fd table held about {format_count(size)} "
            f"({whose})")


@dataclass(frozen=True)
class StepTable:
    """One table of the steps: column titles and alignment, and per configuration its rows
    (label, cells)."""

    columns: list[tuple[str, str]]
    groups: list[tuple[str, list[list[str]]]]


# (title, column, formatter) of the table while the files are held, and after the close.
_HELD = [("clients", "clients", _plain), ("failed", "failed", _plain), ("visible", "visible_fds", _signed),
         ("dmn fds", "daemon_fds_delta", _signed), ("hidden", "hidden_files", _signed),
         ("bfilp", "backing_file_objects", _signed), ("listed", "kernel_listed", _signed),
         ("p50 us", "open_p50_us", format_number), ("B/file", "slab_bytes_per_file", format_number)]
_AFTER = [("idle ids", "idle_ids", _plain), ("hidden", "idle_hidden_files", _signed),
          ("bfilp", "idle_backing_file_objects", _signed),
          ("B/file", "idle_bytes_per_file", format_number), ("closed", "closed_ids", _plain),
          ("release s", "release_s", format_number)]


def step_tables(steps: pd.DataFrame) -> tuple[StepTable, StepTable | None]:
    """The steps as two tables, a row per step under its configuration, columns with data only:
    while held (clients shown where they vary; the daemon's fds where lsof's view is missing),
    and after the close (none for folders before format 7)."""
    several = "release" in steps and steps["release"].nunique() > 1
    held = [entry for entry in _HELD if has(steps, entry[1])]
    if has(steps, "visible_fds"):
        held = [entry for entry in held if entry[1] != "daemon_fds_delta"]
    if not (has(steps, "clients") and steps["clients"].nunique() > 1):
        held = [entry for entry in held if entry[1] != "clients"]
    after = [entry for entry in _AFTER if has(steps, entry[1])]
    if has(steps, "returned_to_baseline") and after:
        after.append(("back", "returned_to_baseline", lambda v: ("yes" if v else "no") if is_number(v) else ""))

    digits = len(str(int(steps["open_files"].max()))) if not steps.empty else 1

    def table(entries) -> StepTable:
        groups = []
        for config, frame in steps.groupby("config", sort=False):
            rows = []
            for _, step in frame.iterrows():
                release = step.get("release") if several else None
                label = f"  {int(step['open_files']):>{digits}}" + (f" {release}" if is_number(release) else "")
                rows.append([label, *(show(step.get(column)) for _, column, show in entries)])
            groups.append((str(config), rows))
        return StepTable([("  N" + (" release" if several else ""), "<"), *((title, ">") for title, _, _ in entries)],
                         groups)

    return table(held), (table(after) if after else None)


def releases_in(steps: pd.DataFrame) -> list[str]:
    """The release methods of the steps, in order of appearance."""
    return list(dict.fromkeys(steps["release"].dropna())) if "release" in steps else []
