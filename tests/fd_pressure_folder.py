"""A results folder of fd pressure at scale (format 7: clients, release, idle and kernel-memory
columns), written as the runner writes one, for the tests of bench.analysis.fdmemory and the
reports. Every figure is exactly linear in the files opened, so the fits are known:

- kernel memory (slab_bytes) per open file: PER_FILE bytes by target; /proc/meminfo's Slab grows
  by 1.25 x that plus 2 MiB, SUnreclaim by half of it; the bfilp slab's bytes per file
  (kernel_bytes_per_file) are BFILP_PER_FILE, passthrough only;
- passthrough-keep's daemon holds an fd per file and fails from N = 1,000,000 (RLIMIT_NOFILE
  600,000: EMFILE); close and cache hand their files to the kernel: hidden files and bfilp
  objects grow with N, the daemon's fds do not;
- passthrough-cache keeps up to CACHE_SIZE backing ids idle after the close; the rest are evicted
  (closed_ids), as close and keep close all of theirs;
- release_s only where something stayed idle to release (passthrough-cache), as the runner
  times it;
- two release methods per step (drop_caches, unmount); kernel_listed is empty (no fusectl view).
"""

from __future__ import annotations

import math
from pathlib import Path

from bench.records import FdPressureRecord
from bench.results import ResultsWriter

SCENARIO = """\
name: fd-scale
repeat: 1
targets:
  - {name: native, type: native}
  - {name: fuse, type: fuse}
  - {name: passthrough-keep, type: passthrough, fd_policy: keep}
  - {name: passthrough-close, type: passthrough, fd_policy: close}
  - {name: passthrough-cache, type: passthrough, fd_policy: cache, cache_size: 65536}
fd_pressure:
  targets: [native, fuse, passthrough-keep, passthrough-close, passthrough-cache]
  open_files: [1000, 10000, 100000, 1000000]
  daemon_nofile: 600000
  release: [drop_caches, unmount]
"""
TARGETS = {"native": ("native", None), "fuse": ("fuse", None), "passthrough-keep": ("passthrough", "keep"),
           "passthrough-close": ("passthrough", "close"), "passthrough-cache": ("passthrough", "cache")}
PER_FILE = {"native": 1536, "fuse": 2560, "passthrough-keep": 3328, "passthrough-close": 3072,
            "passthrough-cache": 3072}
OPEN_FILES = (1000, 10_000, 100_000, 1_000_000)
RELEASES = ("drop_caches", "unmount")
DAEMON_NOFILE = 600_000
CACHE_SIZE = 65536
FILE_MAX = 4_000_000
IDLE_PER_FILE = 512     # slab bytes per file still cached after the close (dentries, inodes)
BFILP_PER_FILE = 256.0  # kernel_bytes_per_file: the bfilp slab's share of PER_FILE (passthrough)


def step(target: str, n: int, release: str) -> FdPressureRecord:
    """One step's row, every figure worked out from the rules in the docstring."""
    kind, policy = TARGETS[target]
    failed = max(0, n - (DAEMON_NOFILE - 10)) if policy == "keep" else 0
    opened = n - failed
    daemon = opened if kind == "fuse" or policy == "keep" else 0
    passthrough = kind == "passthrough"
    hidden = opened if policy in ("close", "cache") else 0
    slab = PER_FILE[target] * opened
    idle_ids = min(opened, CACHE_SIZE) if policy == "cache" else (0 if passthrough else None)
    p50 = (5.0 if kind == "native" else 40.0) * (1 + 0.1 * math.log10(n / 1000))
    return FdPressureRecord(
        target=target, target_type=kind, fd_policy=policy, daemon_nofile=None if kind == "native" else DAEMON_NOFILE,
        release=release, clients=max(1, math.ceil(n / 262_144)), open_files=n, opened=opened, failed=failed,
        errno="EMFILE" if failed else None, daemon_fds_before=None if kind == "native" else 8,
        daemon_fds_delta=None if kind == "native" else daemon, client_fds_delta=opened,
        visible_fds=daemon + opened, file_nr_delta=daemon + opened + hidden, hidden_files=hidden,
        backing_file_objects=opened if passthrough else 0, backing_ids=opened if passthrough else None,
        kernel_listed=None, file_objects=daemon + opened + hidden, dentry_objects=opened * (1 if kind == "native" else 2),
        fuse_inode_objects=0 if kind == "native" else opened, backing_inode_objects=opened,
        backing_inode_slab="ext4_inode_cache", slab_bytes=slab, meminfo_slab_kib=(slab * 5 // 4 + (2 << 20)) // 1024,
        meminfo_sunreclaim_kib=slab // 2 // 1024, slab_bytes_per_file=slab / opened,
        kernel_bytes_per_file=BFILP_PER_FILE if passthrough else None,
        file_nr_held=5000 + daemon + opened + hidden, file_max=FILE_MAX, nr_open=1_048_576,
        open_p50_us=p50, open_p99_us=3 * p50, opens_per_s=1e6 / p50, daemon_rss_delta_kib=None if kind == "native" else opened // 8,
        close_s=opened * 2e-6, idle_ids=idle_ids, idle_hidden_files=idle_ids or 0,
        idle_backing_file_objects=0, idle_slab_bytes=IDLE_PER_FILE * opened + 1536 * (idle_ids or 0),
        closed_ids=opened - (idle_ids or 0) if passthrough else None,
        release_s=None if not idle_ids else (0.1 + idle_ids * 1e-5) if release == "drop_caches" else 0.5 + opened * 1e-6,
        returned_to_baseline=True, status="ok")


def fd_pressure_folder(path: Path, releases: tuple[str, ...] = RELEASES) -> Path:
    """Write the folder at `path` (fd pressure only, no runs) and return it."""
    writer = ResultsWriter.create(path)
    writer.write_scenario(SCENARIO)
    for target in TARGETS:
        for n in OPEN_FILES:
            for release in releases:
                writer.append_fd_pressure(step(target, n, release))
    return path
