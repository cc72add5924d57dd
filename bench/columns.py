"""Column contracts of the results folder (README documents them).

runs.csv: one row per measured run. Empty cells mean "does not apply".
fd_pressure.csv: one row per fd-pressure step.
samples.csv columns are owned by bench.monitor (SAMPLE_COLUMNS there).
"""

RUN_COLUMNS = (
    # identity
    "run_id",            # "<cell>--<target>--r<repetition>", file-name safe
    "workload",          # workload name as written in the scenario
    "cell",              # workload + sweep values, e.g. "randread-4k_iodepth-32"
    "sweep",             # JSON object of the swept values of this cell, "{}" when none
    "target",            # target name
    "target_type",       # native | fuse | passthrough | external
    "repetition",        # 1..repeat
    "order",             # position of this run in the whole run (0-based): drift analysis
    "started_at",        # ISO 8601 UTC
    "duration_s",        # wall time of the fio run
    "status",            # ok | failed | unavailable
    "error",             # why, when status is not ok
    # workload as run (for reports that must not re-read the scenario)
    "rw", "bs", "iodepth", "ioengine", "direct", "numjobs", "nrfiles", "cache",
    # fio figures
    "read_bw_mib_s", "read_iops", "read_io_bytes",
    "read_clat_mean_us", "read_clat_p50_us", "read_clat_p99_us", "read_clat_p999_us", "read_lat_mean_us",
    "write_bw_mib_s", "write_iops", "write_io_bytes",
    "write_clat_mean_us", "write_clat_p50_us", "write_clat_p99_us", "write_clat_p999_us", "write_lat_mean_us",
    "fio_usr_cpu_pct", "fio_sys_cpu_pct", "fio_ctx", "fio_runtime_s",
    # monitor aggregates over the fio run
    "fio_cpu_user_s", "fio_cpu_sys_s",
    "daemon_cpu_user_s", "daemon_cpu_sys_s", "daemon_fds_max", "daemon_rss_max_kib",
    "system_cpu_user_s", "system_cpu_sys_s", "system_cpu_iowait_s",
    "file_nr_max", "sampler_cpu_s", "samples",
    # FUSE request accounting
    "fuse_read_requests", "fuse_write_requests", "fuse_other_requests",
    "fuse_requests_source",  # "server" (built-in counters) or "tracepoint" or "" (none)
    "passthrough_engaged",   # true/false for passthrough targets, empty otherwise
    "fd_policy", "xattr",
)

FD_PRESSURE_COLUMNS = (
    "target", "target_type", "fd_policy", "daemon_nofile",
    "open_files", "opened", "failed", "errno",
    "daemon_fds_before", "daemon_fds_delta", "client_fds_delta", "file_nr_delta",
    "hidden_files", "backing_file_objects", "backing_ids",
    "open_p50_us", "open_p99_us", "opens_per_s",
    "daemon_rss_delta_kib", "kernel_bytes_per_file",
    "close_s", "returned_to_baseline", "baseline_detail",
    "status",            # ok | failed | unavailable (as in runs.csv)
    "error",             # why, when status is not ok
    "file_nr_noise",     # spread of file-nr while nothing of ours changed: other activity on the host
)
