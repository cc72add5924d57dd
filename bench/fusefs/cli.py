"""`python -m bench.fusefs SOURCE MOUNTPOINT ...`: argument checks, then the server."""

from __future__ import annotations

import argparse
import os
import sys

from bench.argtypes import positive_int, seconds
from bench.errors import EXIT_RUN_FAILED, BenchError, InputError
from bench.fusefs.backing import FD_POLICIES
from bench.fusefs.config import Options
from bench.fusefs.server import Server


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print usage)
        raise InputError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of the built-in server."""
    ap = _Parser(prog="python -m bench.fusefs", description="Mirror SOURCE at MOUNTPOINT over FUSE.")
    ap.add_argument("source")
    ap.add_argument("mountpoint")
    ap.add_argument("--mode", choices=["plain", "passthrough"], default="plain")
    ap.add_argument("--fd-policy", choices=FD_POLICIES, default="keep")
    ap.add_argument("--cache-size", type=positive_int, default=1024)
    ap.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    ap.add_argument("--max-pages", type=positive_int, default=256)
    ap.add_argument("--max-background", type=positive_int, default=64)
    ap.add_argument("--batch", type=positive_int, default=32,
                    help="plain mode: queued READs submitted with one io_submit (1: a pread each)")
    ap.add_argument("--writeback-cache", action="store_true")
    ap.add_argument("--keep-cache", action="store_true")
    ap.add_argument("--direct-io", action="store_true")
    ap.add_argument("--attr-timeout", type=seconds, default=1.0)
    ap.add_argument("--entry-timeout", type=seconds, default=1.0)
    ap.add_argument("--xattr", choices=["on", "off"], default="off")
    ap.add_argument("--stats-file")
    ap.add_argument("--stats-interval", type=seconds, default=0.25)
    ap.add_argument("--nofile", type=positive_int)
    return ap


def parse_options(argv: list[str]) -> Options:
    """Validated options, or InputError with a one-line reason."""
    a = build_parser().parse_args(argv)
    for name in ("source", "mountpoint"):
        if not os.path.isabs(getattr(a, name)):
            raise InputError(f"{name} must be an absolute path: {getattr(a, name)}")
    if not os.path.isdir(a.source):
        raise InputError(f"source is not a directory: {a.source}")
    if not os.path.isdir(a.mountpoint):
        raise InputError(f"mountpoint is not a directory: {a.mountpoint}")
    if a.max_pages > 256:
        raise InputError(f"--max-pages must be <= 256 (1 MiB requests): {a.max_pages}")
    if a.max_background > 65535:
        raise InputError(f"--max-background must be <= 65535: {a.max_background}")
    if a.stats_interval <= 0:
        raise InputError("--stats-interval must be > 0")
    if a.mode == "passthrough":
        if os.geteuid() != 0:
            raise InputError("passthrough needs root (FUSE_DEV_IOC_BACKING_OPEN requires CAP_SYS_ADMIN)")
        conflicts = {
            "writeback_cache": "--writeback-cache disables passthrough in the kernel",
            "keep_cache": "--keep-cache makes passthrough opens fail with EIO",
            "direct_io": "--direct-io turns passthrough off for reads and writes",
        }
        for flag, why in conflicts.items():
            if getattr(a, flag):
                raise InputError(f"{why}: not allowed with --mode passthrough")
    return Options(
        source=os.path.realpath(a.source), mountpoint=os.path.realpath(a.mountpoint), mode=a.mode,
        fd_policy=a.fd_policy, cache_size=a.cache_size, threads=a.threads, max_pages=a.max_pages,
        max_background=a.max_background, batch=a.batch, writeback_cache=a.writeback_cache,
        keep_cache=a.keep_cache, direct_io=a.direct_io, attr_timeout=a.attr_timeout,
        entry_timeout=a.entry_timeout, xattr=a.xattr, stats_file=a.stats_file,
        stats_interval=a.stats_interval, nofile=a.nofile,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground; 0 when unmounted or signalled, 2 for bad input or a refused mount."""
    try:
        opts = parse_options(sys.argv[1:] if argv is None else argv)
        return Server(opts).run()
    except BenchError as exc:
        print(f"fusefs: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the source or the device failed under us
        print(f"fusefs: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
