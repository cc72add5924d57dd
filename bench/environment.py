"""The environment a result was measured in (manifest.json), and the block-device counters of
per-run disk accounting.

Everything is read from the machine itself: /proc, /sys and /boot are parameters so the tests
can point them at a fixture tree. A missing or unreadable file gives None, never an exception.
"""

from __future__ import annotations

import gzip
import os
import platform
import re
import subprocess
import zlib
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import bench

PROC, SYS, BOOT = Path("/proc"), Path("/sys"), Path("/boot")
SECTOR = 512  # /proc/diskstats and sysfs sizes count 512-byte sectors, whatever the device's
GIT_TIMEOUT = 5.0
FUSE_CONFIG = re.compile(r"^(?:# )?(CONFIG_FUSE_\w+|CONFIG_CUSE)(?:=(.*)| is not set)$", re.MULTILINE)


def collect(workdir: Path, *, proc: Path = PROC, sys: Path = SYS, boot: Path = BOOT) -> dict:
    """The environment of a run whose files live in `workdir` (a JSON-serialisable tree)."""
    release = read(proc / "sys/kernel/osrelease")
    return {
        "kernel": {"release": release, "version": read(proc / "sys/kernel/version"),
                   "arch": platform.machine(), "cmdline": read(proc / "cmdline")},
        "fuse": fuse_info(release, proc=proc, sys=sys, boot=boot),
        "cpu": cpu_info(proc=proc, sys=sys),
        "memory": memory_info(proc=proc, sys=sys),
        "workdir": workdir_info(workdir, proc=proc, sys=sys),
        "tool": tool_info(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
    }


def differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf that differs, sorted by key; a key
    present on one side only has None on the other."""
    left, right = flatten(a), flatten(b)
    return [(key, left.get(key), right.get(key)) for key in sorted(left.keys() | right.keys())
            if left.get(key) != right.get(key)]


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """The leaves of a nested dict under dotted keys ({"a": {"b": 1}} -> {"a.b": 1})."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


# -- readers -----------------------------------------------------------------------------------

def read(path: Path) -> str | None:
    """The file's text, stripped; None when it is missing or unreadable."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: Path) -> int | None:
    """The file's integer; None when missing, unreadable or not an integer."""
    text = read(path)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def read_bool(path: Path) -> bool | None:
    """A 0/1 sysfs flag."""
    value = read_int(path)
    return None if value is None else bool(value)


def read_dir(directory: Path) -> dict[str, str | None] | None:
    """Every file of `directory` by name (module parameters, vulnerabilities); None without it."""
    try:
        return {entry.name: read(entry) for entry in sorted(directory.iterdir()) if entry.is_file()}
    except OSError:
        return None


def selected(text: str | None) -> str | None:
    """The chosen value of a sysfs choice list ("always [madvise] never" -> "madvise")."""
    if text is None:
        return None
    match = re.search(r"\[([^\]]*)\]", text)
    return match.group(1) if match else text


# -- groups ------------------------------------------------------------------------------------

def fuse_info(release: str | None, *, proc: Path = PROC, sys: Path = SYS, boot: Path = BOOT) -> dict:
    """CONFIG_FUSE_* and CONFIG_CUSE ("y", "m", "n" when not set) and the fuse module parameters."""
    text, source = kernel_config(release, proc=proc, boot=boot)
    config = None if text is None else {name: value or "n" for name, value in FUSE_CONFIG.findall(text)}
    return {"config": config, "config_source": source, "parameters": read_dir(sys / "module/fuse/parameters")}


def kernel_config(release: str | None, *, proc: Path = PROC, boot: Path = BOOT) -> tuple[str | None, str | None]:
    """(text, file) of the running kernel's configuration: /proc/config.gz, else
    /boot/config-<release>; (None, None) when neither can be read."""
    try:
        with gzip.open(proc / "config.gz", "rt") as config:
            return config.read(), str(proc / "config.gz")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        pass
    if release is None:
        return None, None
    path = boot / f"config-{release}"
    text = read(path)
    return text, None if text is None else str(path)


def cpu_info(*, proc: Path = PROC, sys: Path = SYS) -> dict:
    """Model, counts, frequency and idle policy, SMT, mitigations and virtualization."""
    cpuinfo = read(proc / "cpuinfo")
    models = re.findall(r"^model name\s*:\s*(.*)$", cpuinfo or "", re.MULTILINE)
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo or "", re.MULTILINE)
    cpus = sys / "devices/system/cpu"
    governors = sorted({g for g in map(read, cpus.glob("cpu[0-9]*/cpufreq/scaling_governor")) if g})
    return {
        "model": models[0] if models else None,
        "logical": None if cpuinfo is None else len(re.findall(r"^processor\s*:", cpuinfo, re.MULTILINE)),
        "online": read(cpus / "online"),
        "governors": governors or ("none" if cpus.is_dir() else None),
        "cpuidle": {"driver": read(cpus / "cpuidle/current_driver"),
                    "governor": read(cpus / "cpuidle/current_governor") or read(cpus / "cpuidle/current_governor_ro")},
        "smt": {"control": read(cpus / "smt/control"), "active": read_bool(cpus / "smt/active")},
        "vulnerabilities": read_dir(cpus / "vulnerabilities"),
        "virtualization": {
            "hypervisor_flag": None if flags is None else "hypervisor" in flags.group(1).split(),
            "hypervisor_type": read(sys / "hypervisor/type"),
            "sys_vendor": read(sys / "class/dmi/id/sys_vendor"),
            "product_name": read(sys / "class/dmi/id/product_name"),
        },
    }


def memory_info(*, proc: Path = PROC, sys: Path = SYS) -> dict:
    """Memory and swap sizes, huge pages and transparent huge pages."""
    meminfo = read(proc / "meminfo") or ""

    def kib(field: str) -> int | None:
        match = re.search(rf"^{field}:\s+(\d+) kB$", meminfo, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else None

    thp = sys / "kernel/mm/transparent_hugepage"
    return {
        "total_bytes": kib("MemTotal"), "swap_total_bytes": kib("SwapTotal"),
        "hugepage_size_bytes": kib("Hugepagesize"), "nr_hugepages": read_int(proc / "sys/vm/nr_hugepages"),
        "transparent_hugepage": {"enabled": selected(read(thp / "enabled")),
                                 "defrag": selected(read(thp / "defrag"))},
    }


def workdir_info(workdir: Path, *, proc: Path = PROC, sys: Path = SYS) -> dict:
    """The work directory's mount and the block device under it (None for tmpfs, FUSE...)."""
    path = existing(workdir.resolve())
    node = block_node(path, sys=sys)
    return {"path": str(workdir.resolve()), "mount": mount_of(path, proc=proc),
            "device": None if node is None else block_device(node, sys=sys)}


def tool_info() -> dict:
    """fusebench's version, and its commit and dirty flag when it runs from a git checkout."""
    return {"version": bench.__version__, **checkout_state(Path(bench.__file__).resolve().parent)}


def checkout_state(package: Path) -> dict:
    """{"commit", "dirty"} of the git checkout the package directory `package` is tracked in;
    {} when it is in none (an installed copy) or git is absent or fails."""
    root = next((d for d in package.parents if (d / ".git").exists()), None)
    if root is None:
        return {}
    try:
        # An installed copy inside a checkout (a .venv under it) is not tracked there.
        git(root, "ls-files", "--error-unmatch", "--", str(package / "__init__.py"))
        commit = git(root, "rev-parse", "HEAD").strip()
        dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": dirty}


def git(root: Path, *args: str) -> str:
    """stdout of a git command in `root`; raises when it fails or hangs. It takes no optional
    locks: a refresh of the index must not get in the way of someone working in the checkout."""
    # safe.directory: run as root from a checkout someone else owns, git refuses "dubious ownership"
    return subprocess.run(["git", "--no-optional-locks", "-c", f"safe.directory={root}", "-C", str(root), *args],
                          capture_output=True, text=True, check=True, timeout=GIT_TIMEOUT).stdout


# -- mounts and block devices ------------------------------------------------------------------

def existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (a work directory not created yet)."""
    return next(p for p in (path, *path.parents) if p.exists())


def unescape(field: str) -> str:
    """A mountinfo path with its octal escapes (\\040 for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: Path, *, proc: Path = PROC) -> dict | None:
    """The mount `path` lives on (/proc/self/mountinfo): the deepest mount point above it, the
    last mounted when several are stacked there."""
    best: dict | None = None
    for line in (read(proc / "self/mountinfo") or "").splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        tail = fields[fields.index("-", 6) + 1:]
        point = Path(unescape(fields[4]))
        if len(tail) < 3 or not path.is_relative_to(point):
            continue
        if best is None or len(point.parts) >= len(Path(best["mount_point"]).parts):
            best = {"mount_point": str(point), "fs_type": tail[0], "source": unescape(tail[1]),
                    "options": fields[5], "super_options": tail[2], "device_number": fields[2]}
    return best


def block_node(path: Path, *, sys: Path = SYS) -> Path | None:
    """The sysfs directory of the block device holding `path` (by st_dev); None when no block
    device does (tmpfs, overlay, FUSE, btrfs's anonymous devices)."""
    try:
        dev = os.stat(existing(path)).st_dev
    except OSError:
        return None
    link = sys / f"dev/block/{os.major(dev)}:{os.minor(dev)}"
    return link.resolve() if link.exists() else None


def block_device(node: Path, *, sys: Path = SYS) -> dict:
    """What sysfs says of the block device at `node`; queue and hardware facts come from its
    disk (the parent of a partition)."""
    partition = (node / "partition").exists()
    disk = node.parent if partition else node
    queue, hardware = disk / "queue", disk / "device"
    sectors = read_int(node / "size")
    driver = hardware / "driver"
    dm_uuid = read(node / "dm/uuid")
    slaves = node / "slaves"
    return {
        "name": node.name,
        "parent": disk.name if partition else None,
        "size_bytes": None if sectors is None else sectors * SECTOR,
        "model": read(hardware / "model"),
        "vendor": read(hardware / "vendor"),
        "driver": driver.resolve().name if driver.exists() else None,
        "virtual": sys.resolve() / "devices/virtual" in node.parents,
        "slaves": sorted(s.name for s in slaves.iterdir()) if slaves.is_dir() else [],
        "dm_name": read(node / "dm/name"),
        # The uuid's prefix says what made the mapping: LVM, CRYPT, mpath...
        "dm_kind": dm_uuid.split("-", 1)[0] if dm_uuid else None,
        "md_level": read(node / "md/level"),
        "loop_backing_file": read(node / "loop/backing_file"),
        "scheduler": selected(read(queue / "scheduler")),
        "rotational": read_bool(queue / "rotational"),
        "nr_requests": read_int(queue / "nr_requests"),
        "queue_depth": read_int(hardware / "queue_depth"),
        "hw_queues": sum(1 for _ in (disk / "mq").iterdir()) if (disk / "mq").is_dir() else None,
        "hw_queue_tags": read_int(disk / "mq/0/nr_tags"),
        "write_cache": read(queue / "write_cache"),
        "read_ahead_kb": read_int(queue / "read_ahead_kb"),
    }


# -- disk accounting ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DiskCounters:
    """Requests completed and bytes moved by a block device since boot (/proc/diskstats)."""

    reads: int
    read_bytes: int
    writes: int
    write_bytes: int

    def __sub__(self, before: DiskCounters) -> DiskCounters:
        """What the device did between `before` and this reading."""
        return DiskCounters(*(after - then for after, then in zip(astuple(self), astuple(before))))


def device_of(path: Path, *, proc: Path = PROC, sys: Path = SYS) -> str | None:
    """The /proc/diskstats name of the block device holding `path` (a partition's own name);
    None when no block device does (tmpfs, overlay, FUSE...)."""
    node = block_node(path, sys=sys)
    if node is None or read_diskstats(node.name, proc=proc) is None:
        return None
    return node.name


def read_diskstats(name: str, *, proc: Path = PROC) -> DiskCounters | None:
    """The counters of device `name` in /proc/diskstats; None when it is not listed."""
    for line in (read(proc / "diskstats") or "").splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[2] == name:
            reads, _, read_sectors, _, writes, _, write_sectors = map(int, fields[3:10])
            return DiskCounters(reads, read_sectors * SECTOR, writes, write_sectors * SECTOR)
    return None
