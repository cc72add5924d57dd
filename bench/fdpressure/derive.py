"""From readings to a step's figures: deltas, hidden files, kernel bytes per file, open
latency percentiles, and whether every count came back to its baseline. Pure functions: the
readings are kept as snapshots and the client's report (every open's latency) as JSON in the
results folder, so the figures can be derived again later."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict
from typing import Any

from bench.fdpressure.counts import Counts
from bench.percentile import percentiles
from bench.records import STATUS_OK, FdPressureRecord, SnapshotRecord
from bench.system import BACKING_FILE_SLAB


def file_nr_error(cpus: int | None = None) -> int:
    """How far a file-nr difference may be off on a machine with `cpus` CPUs (default: this one)."""
    # The kernel counts files per CPU and folds each CPU's count into the total in batches
    # of max(32, 2 x CPUs): each reading may be off by up to a batch per CPU.
    cpus = cpus or os.cpu_count() or 1
    return 2 * max(32, 2 * cpus) * cpus


# How far a count may be off its baseline and still count as returned: the built-in
# daemon briefly holds its stats file open; file-nr is a per-CPU approximation (plus what
# other processes do meanwhile, measured per step); the slab count is exact after a shrink
# but system-wide.
DAEMON_FDS_TOLERANCE = 2
FILE_NR_TOLERANCE = file_nr_error()
SLAB_TOLERANCE = 16


def delta(after: int | None, before: int | None) -> int | None:
    """after - before, None when either is unknown."""
    return None if after is None or before is None else after - before


def baseline_differences(baseline: Counts, now: Counts, file_nr_noise: int = 0) -> list[str]:
    """What has not returned to its baseline (within tolerance); empty when everything has.

    The daemon's fds and backing ids are ours alone: any change counts. file-nr and the
    slabs are system-wide: only an excess can be ours (a leak); a drop is other processes
    closing files. Counts unknown in either reading (a daemon not mounted) are not compared.
    """
    checks = (
        ("daemon fds", baseline.daemon_fds, now.daemon_fds, DAEMON_FDS_TOLERANCE, True),
        ("file-nr", baseline.file_nr, now.file_nr, FILE_NR_TOLERANCE + file_nr_noise, False),
        (BACKING_FILE_SLAB, baseline.bfilp_active, now.bfilp_active, SLAB_TOLERANCE, False),
        ("fuse_inode", baseline.fuse_inode_active, now.fuse_inode_active, SLAB_TOLERANCE, False),
        ("backing ids", baseline.backing_ids, now.backing_ids, 0, True),
    )
    return [
        f"{name} {before} -> {after}"
        for name, before, after, tolerance, both_ways in checks
        if before is not None
        and after is not None
        and (abs(after - before) if both_ways else after - before) > tolerance
    ]


def _slab_deltas(before: Counts, after: Counts) -> dict[str, int | None]:
    return {
        "file_objects": delta(after.filp_active, before.filp_active),
        "backing_file_objects": delta(after.bfilp_active, before.bfilp_active),
        "dentry_objects": delta(after.dentry_active, before.dentry_active),
        "fuse_inode_objects": delta(after.fuse_inode_active, before.fuse_inode_active),
        "backing_inode_objects": delta(after.backing_inode_active, before.backing_inode_active),
        "slab_bytes": delta(after.slab_bytes, before.slab_bytes),
        "meminfo_slab_kib": delta(after.meminfo_slab_kib, before.meminfo_slab_kib),
        "meminfo_sunreclaim_kib": delta(after.meminfo_sunreclaim_kib, before.meminfo_sunreclaim_kib),
    }


def step_figures(count: int, readings: dict[str, Counts], opened: dict[str, Any], close_s: float, noise: int,
                 daemon_counted: bool) -> dict[str, Any]:
    """The measured columns of a step, from its readings by phase (baseline, before, held and,
    once the clients are gone, idle) and the clients' merged report (`opened`: opened, failed,
    errno, wall_s and each client's report with its `open_ns` under `clients`)."""
    before, held = readings["before"], readings["held"]
    daemon_fds_delta = delta(held.daemon_fds, before.daemon_fds)
    client_fds_delta = delta(held.client_fds, before.client_fds)
    file_nr_delta = held.file_nr - before.file_nr
    # One histogram for both percentiles: a million latencies, mostly distinct.
    p50, p99 = percentiles(Counter(ns for client in opened["clients"] for ns in client["open_ns"]), [50, 99])
    slabs = _slab_deltas(before, held)

    def per_file(total: int | None) -> float | None:
        return round(total / opened["opened"], 1) if total is not None and opened["opened"] else None

    def delta_bytes(objects: int | None, size: int | None) -> int | None:
        return objects * size if objects is not None and size is not None else None

    figures = {
        "open_files": count,
        "opened": opened["opened"],
        "failed": opened["failed"],
        "errno": opened["errno"],
        "daemon_fds_before": before.daemon_fds,
        "daemon_fds_delta": daemon_fds_delta,
        "client_fds_delta": client_fds_delta,
        "visible_fds": (daemon_fds_delta or 0) + client_fds_delta
        if client_fds_delta is not None and daemon_counted else None,
        "file_nr_delta": file_nr_delta,
        # A FUSE target whose daemon could not be found: its fds would pass for hidden files.
        "hidden_files": file_nr_delta - (daemon_fds_delta or 0) - client_fds_delta if daemon_counted else None,
        "backing_ids": delta(held.backing_ids, before.backing_ids),
        "kernel_listed": delta(held.kernel_listed, before.kernel_listed),
        **slabs,
        "kernel_bytes_per_file": per_file(delta_bytes(slabs["backing_file_objects"], held.bfilp_objsize)),
        "slab_bytes_per_file": per_file(slabs["slab_bytes"]),
        "file_nr_held": held.file_nr,
        "open_p50_us": None if p50 is None else round(p50 / 1000, 1),
        "open_p99_us": None if p99 is None else round(p99 / 1000, 1),
        "opens_per_s": round(count / opened["wall_s"], 1) if opened["wall_s"] > 0 else None,
        "daemon_rss_delta_kib": delta(held.daemon_rss_kib, before.daemon_rss_kib),
        "close_s": round(close_s, 4),
        "file_nr_noise": noise,
    }
    idle = readings.get("idle")
    if idle is not None:
        # Files and ids against the fresh mount (the clients and their pipes did not exist yet);
        # slabs against `before`, so that what the clients' start-up cached (the interpreter's
        # dentries and inodes) is not taken for what stays.
        baseline = readings["baseline"]
        daemon_fds_idle = delta(idle.daemon_fds, baseline.daemon_fds)
        figures.update(
            idle_ids=delta(idle.backing_ids, baseline.backing_ids),
            idle_hidden_files=idle.file_nr - baseline.file_nr - (daemon_fds_idle or 0) if daemon_counted else None,
            idle_backing_file_objects=delta(idle.bfilp_active, before.bfilp_active),
            idle_slab_bytes=delta(idle.slab_bytes, before.slab_bytes),
            closed_ids=delta(idle.backing_closes, baseline.backing_closes),
        )
    return figures


def snapshot_record(record: FdPressureRecord, phase: str, counts: Counts) -> SnapshotRecord:
    """A reading of a step as a fd_pressure_snapshots.csv row."""
    return SnapshotRecord(target=record.target, fd_policy=record.fd_policy, release=record.release,
                          open_files=record.open_files, phase=phase, **asdict(counts))


def _signed(value: int | None) -> str:
    return "n/a" if value is None else f"{value:+d}"


def progress_line(record: FdPressureRecord) -> str:
    """One progress line for a measured (or failed) step."""
    release = f" {record.release}" if record.release else ""
    head = f"fd pressure: {record.target} N={record.open_files}{release}"
    if record.status != STATUS_OK:
        return f"{head}: {record.status}: {record.error}"
    baseline = ("back to baseline" if record.returned_to_baseline
                else f"NOT back to baseline ({record.baseline_detail})")
    failed = f", {record.failed} failed ({record.errno})" if record.failed else ""
    clients = f" by {record.clients} clients" if record.clients and record.clients > 1 else ""
    released = f"released in {record.release_s} s" if record.release_s is not None else "NOT released"
    idle = f"; idle ids {record.idle_ids}, {released}" if record.idle_ids else ""
    return (
        f"{head}: opened {record.opened}{failed}{clients}; visible {_signed(record.visible_fds)} "
        f"(daemon {_signed(record.daemon_fds_delta)}), hidden {_signed(record.hidden_files)}, "
        f"{BACKING_FILE_SLAB} {_signed(record.backing_file_objects)}, {record.slab_bytes_per_file} B/file, "
        f"open p50 {record.open_p50_us} us{idle}; {baseline}"
    )
