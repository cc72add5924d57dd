"""The built-in FUSE server: a mirror file system speaking the kernel protocol on /dev/fuse,
in plain or passthrough mode (no libfuse). Stand-alone: it imports nothing from the rest of
fusebench, which uses its leaf modules in turn (mounts, libc, kernel, units, files, errors,
options)."""
