"""`fusebench doctor`: what this machine supports, and how to fix what it does not.

Each check is a function of the Host: it prints `ok`, `missing` (the default scenario needs
it) or `warn` (optional), with how to fix it. Exit 0 when everything the default scenario
needs is there, else 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import system
from bench.errors import EXIT_BAD_INPUT, EXIT_OK, BenchError
from bench.fusefs.kernel import PASSTHROUGH_MIN_KERNEL, uring_missing
from bench.host import Host
from bench.programs import CATALOG
from bench.scenario import FuseTarget, PassthroughTarget
from bench.transport import builtin_ring_requests

OK, MISSING, WARN = "ok", "missing", "warn"
NOFILE_WANTED = 65536  # fd_pressure scenarios open tens of thousands of files
PROBE_BYTES = 1 << 20
MIN_KERNEL = ".".join(map(str, PASSTHROUGH_MIN_KERNEL))


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _needed(ok: bool, name: str, detail: str, fix: str) -> Check:
    return Check(name, OK if ok else MISSING, detail, "" if ok else fix)


def check_fio(host: Host) -> Check:
    """fio is installed and runs."""
    path = host.which("fio")
    if path is None:
        return Check("fio", MISSING, "not found on PATH", "apt-get install fio (or `make setup`)")
    version = host.fio_version()
    return _needed(version is not None, "fio", f"{path} ({version or 'does not run'})",
                   "reinstall fio: apt-get install --reinstall fio")


def check_dev_fuse(host: Host) -> Check:
    """/dev/fuse is a character device."""
    present = host.is_char_device("/dev/fuse")
    return _needed(present, "/dev/fuse", "present" if present else "absent",
                   "modprobe fuse (and apt-get install fuse3)")


def check_privileges(host: Host) -> Check:
    """Root, or at least CAP_SYS_ADMIN."""
    if host.is_root() and host.has_cap_sys_admin():
        return Check("privileges", OK, "root")
    capable = host.has_cap_sys_admin()
    who = "root" if host.is_root() else "not root"
    return _needed(capable, "privileges", "CAP_SYS_ADMIN" if capable else f"{who}, without CAP_SYS_ADMIN",
                   "run as root (sudo): mounting, passthrough and dropping caches need it")


def check_kernel(host: Host) -> Check:
    """A kernel new enough for passthrough."""
    version = host.kernel_version()
    return _needed(version >= PASSTHROUGH_MIN_KERNEL, "kernel",
                   f"{version[0]}.{version[1]} (passthrough needs {MIN_KERNEL}+)",
                   f"boot a {MIN_KERNEL} or newer kernel for the passthrough target")


def check_passthrough_config(host: Host) -> Check:
    """CONFIG_FUSE_PASSTHROUGH, when the kernel's config can be read."""
    value = host.kernel_config("CONFIG_FUSE_PASSTHROUGH")
    if value is None:
        return Check("CONFIG_FUSE_PASSTHROUGH", WARN, "unknown (no /proc/config.gz or /boot/config-*)",
                     "the live passthrough check below is what counts")
    return _needed(value == "y", "CONFIG_FUSE_PASSTHROUGH", value, "build the kernel with CONFIG_FUSE_PASSTHROUGH=y")


def check_passthrough_live(host: Host) -> Check:
    """Mount the built-in server in passthrough mode, read a file through it, and confirm no READ reached it."""
    name = "passthrough works"
    target = PassthroughTarget(name="doctor", type="passthrough")
    reason = host.target_unavailable_reason(target)
    if reason:
        return Check(name, MISSING, f"not checked: {reason}",
                     f"resolve that reason (root, /dev/fuse, kernel {MIN_KERNEL}+)")
    try:
        read, stats = host.probe_target(target, PROBE_BYTES)
    except (BenchError, OSError) as exc:
        return Check(name, MISSING, f"the built-in server failed: {exc}", "see `fusebench mount --help`")
    if read != PROBE_BYTES:
        return Check(name, MISSING, f"read {read} of {PROBE_BYTES} bytes through the mount", "see the server log")
    if stats is None:
        return Check(name, WARN, "read through the mount, but the server wrote no stats file", "")
    requests = stats.get("requests", {})
    reads = requests.get("READ", 0)
    return _needed(reads == 0, name, f"read 1 MiB, the server saw {requests.get('OPEN', 0)} OPEN and {reads} READ",
                   "READ requests reached the daemon: the kernel did not engage passthrough")


def check_uring(host: Host) -> Check:
    """Mount the built-in server with `transport: uring` (enable_uring turned on for the check and
    back), read a file through it, and confirm its ring served the requests."""
    name = "io_uring transport works"
    if host.uring_parameter() is None:
        return Check(name, WARN, f"unavailable: {uring_missing()}",
                     "only targets with `transport: uring` or `needs_uring: true` need it")
    target = FuseTarget(name="doctor-uring", type="fuse", transport="uring")
    reason = host.target_unavailable_reason(target)
    if reason:
        return Check(name, WARN, f"not checked: {reason}", "resolve that reason (root, /dev/fuse)")
    try:
        with host.fuse_uring():
            read, stats = host.probe_target(target, PROBE_BYTES)
    except (BenchError, OSError) as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return Check(name, WARN, f"refused: {lines[-1] if lines else type(exc).__name__}",
                     "`transport: uring` targets fail here with that reason")
    if read != PROBE_BYTES:
        return Check(name, WARN, f"read {read} of {PROBE_BYTES} bytes through the mount", "see the server log")
    ring = builtin_ring_requests(stats or {})
    if (stats or {}).get("transport") != "uring" or not ring:
        return Check(name, WARN, f"read 1 MiB, but the server's ring answered {ring} requests", "see the server log")
    return Check(name, OK, f"read 1 MiB, the server's ring answered {ring} requests")


def check_backing_views(host: Host) -> Check:
    """Mount the built-in server in passthrough mode, hold a file open through it, and report which
    kernel views of its backing file exist: fusectl's `backing_files` of the connection, backing
    fields in the daemon's /dev/fuse fdinfo or in the open file's fdinfo (proposed upstream in
    2025; none on 6.18). Informational: the default scenario does not need them."""
    name = "kernel views of backing files"
    fix = ("informational: without them hidden backing files are only seen in the bfilp slab and the "
           "server's stats; a kernel with fusectl backing_files lets fd_pressure count them")
    target = PassthroughTarget(name="doctor-views", type="passthrough")
    reason = host.target_unavailable_reason(target)
    if reason:
        return Check(name, WARN, f"not checked: {reason}", fix)
    try:
        views = host.probe_backing_views(target)
    except (BenchError, OSError) as exc:
        return Check(name, WARN, f"the built-in server failed: {exc}", "see `fusebench mount --help`")
    fusectl = (f"fusectl has {', '.join(views.fusectl) or 'nothing'} "
               f"({'backing_files' if 'backing_files' in views.fusectl else 'no backing_files'})")
    backing = [f"{where} fdinfo has {', '.join(field for field in fields if 'backing' in field)}"
               for where, fields in (("/dev/fuse", views.daemon_fdinfo), ("the open file's", views.file_fdinfo))
               if any("backing" in field for field in fields)]
    if "backing_files" in views.fusectl or backing:
        return Check(name, OK, "; ".join([fusectl, *backing]))
    others = [f"{where} {', '.join(extra)}" for where, fields in (("/dev/fuse", views.daemon_fdinfo),
                                                                 ("file", views.file_fdinfo))
              if (extra := [field for field in fields if field not in system.USUAL_FDINFO])]
    other = f" (other fields: {'; '.join(others)})" if others else ""
    return Check(name, WARN, f"none on this kernel: {fusectl}; fdinfo has no backing fields{other}", fix)


def check_nofile(host: Host) -> Check:
    """An RLIMIT_NOFILE large enough for big fd-pressure steps."""
    soft, hard = host.nofile_limits()
    detail = f"soft {soft}, hard {hard}"
    if hard < NOFILE_WANTED:
        return Check("RLIMIT_NOFILE", WARN, detail, f"large fd_pressure steps need more: ulimit -Hn {NOFILE_WANTED}")
    return Check("RLIMIT_NOFILE", OK, detail)


def check_drop_caches(host: Host) -> Check:
    """The page cache can be dropped (cold-cache runs)."""
    writable = host.is_root() and host.has_cap_sys_admin() and host.writable(system.DROP_CACHES)
    return _needed(writable, "drop_caches", f"{system.DROP_CACHES} {'writable' if writable else 'not writable'}",
                   "run as root: cold-cache runs drop the page cache")


def check_bindfs(host: Host) -> Check:
    """bindfs, for external targets and the tests."""
    path = host.which("bindfs")
    return Check("bindfs", OK if path else WARN, path or "not found (only for external targets and tests)",
                 "" if path else "apt-get install bindfs")


def check_programs(host: Host) -> Check:
    """The commands the program catalog runs (an entry without them is reported unavailable)."""
    needed = sorted({command for entry in CATALOG.values() for command in entry.requires})
    missing = [command for command in needed if host.which(command) is None]
    if missing:
        unusable = [name for name, entry in CATALOG.items() if set(entry.requires) & set(missing)]
        return Check("catalog programs", WARN, f"{', '.join(missing)} not found: {', '.join(unusable)} unavailable",
                     f"apt-get install {' '.join(missing)} (or `make setup`)")
    return Check("catalog programs", OK, f"{', '.join(needed)} found")


def check_tracing(host: Host) -> Check:
    """The fuse:fuse_request_send tracepoint can be counted (external targets' requests)."""
    reason = host.tracing_unavailable_reason()
    return Check("request tracepoint", WARN if reason else OK, reason or "fuse:fuse_request_send countable",
                 "run as root (CAP_BPF, CAP_PERFMON); until then external targets get no FUSE request counts"
                 if reason else "")


CHECKS: tuple[Callable[[Host], Check], ...] = (
    check_fio,
    check_dev_fuse,
    check_privileges,
    check_kernel,
    check_passthrough_config,
    check_passthrough_live,
    check_uring,
    check_backing_views,
    check_nofile,
    check_drop_caches,
    check_bindfs,
    check_programs,
    check_tracing,
)


def run_doctor(host: Host) -> int:
    """Run every check, print one line each; 0 when the default scenario can run, else 2."""
    missing = 0
    for check_fn in CHECKS:
        check = check_fn(host)
        host.output(f"{check.status:<8} {check.name:<24} {check.detail}")
        if check.fix:
            host.output(f"{'':<8} {'':<24} fix: {check.fix}")
        missing += check.status == MISSING
    if missing:
        host.output(f"{missing} thing(s) the default scenario needs are missing (exit 2)")
        return EXIT_BAD_INPUT
    host.output("everything the default scenario needs is here")
    return EXIT_OK
