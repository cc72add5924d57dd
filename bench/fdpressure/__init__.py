"""fd-limit pressure: open N files through a target and account for every file they cost.

For each target of `scenario.fd_pressure` and each N of `open_files`, one *step*:
mount the target afresh (its daemon under RLIMIT_NOFILE `daemon_nofile`), count what is
allocated, let a client process open N small files through the mount and hold them, count
again, let the client close them, drop dentries and inodes (so FORGETs release what the
daemon keeps per inode) and check that every count returns to its baseline.

A fresh mount per step keeps steps independent: a daemon that hit its fd limit in one
step (or leaked) cannot distort the next, and every baseline is a clean mount.

Counts, and what they reveal:
- daemon fds (/proc/PID/fd) and client fds: files visible in some process's fd table;
- /proc/sys/fs/file-nr: all allocated struct files, visible or not; a passthrough daemon
  that closes its fd after registering leaves the backing file allocated but in no table,
  so hidden_files = file_nr_delta - daemon_fds_delta - client_fds_delta;
- the `bfilp` slab: the kernel's per-open struct backing_file, in no table and not in
  file-nr; kernel_bytes_per_file is its growth in bytes per opened file;
- the other slabs an open file pins (filp, dentry, fuse_inode, the backing file system's
  inodes) and /proc/meminfo's Slab and SUnreclaim: slab_bytes_per_file is all of it;
- backing_ids: growth of the built-in server's live backing ids (its stats file).

Modules: `counts` reads everything once (the readings are kept in the results folder as
snapshots, the client's report as JSON), `derive` turns them into a step's figures (pure),
`client` is the process that opens the files, `steps` mounts, drives the client and writes
each step.
"""
