"""The environment of a run: each group read from a fixture /proc, /sys and /boot tree, the
differences `compare` lists, block-device counters; and the real machine (integration)."""

from __future__ import annotations

import gzip
import json
import mmap
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import bench
from bench import environment
from bench.environment import (
    DiskCounters,
    collect,
    device_of,
    differences,
    read_diskstats,
)
from bench.fusefs.kernel import passthrough_unavailable_reason

MiB = 1 << 20
RELEASE = "6.1.0-test"
FUSE_CONFIG = """\
CONFIG_EXT4_FS=y
CONFIG_FUSE_FS=m
CONFIG_CUSE=m
# CONFIG_FUSE_DAX is not set
CONFIG_FUSE_PASSTHROUGH=y
CONFIG_VIRTIO_FS=m
"""
CPUINFO = """\
processor\t: 0
model name\t: Test CPU @ 3.00GHz
flags\t\t: fpu vme hypervisor lm

processor\t: 1
model name\t: Test CPU @ 3.00GHz
flags\t\t: fpu vme hypervisor lm
"""
MEMINFO = """\
MemTotal:       16000000 kB
MemFree:         8000000 kB
SwapTotal:       2000000 kB
Hugepagesize:       2048 kB
"""
# Modern layout (20 fields); sda1's sectors are 512 bytes whatever the disk's block size.
DISKSTATS = """\
   8       0 sda 1000 10 80000 500 2000 20 160000 900 0 1200 1400 0 0 0 0 0 0
   8       1 sda1 100 1 800 50 200 2 1600 90 0 120 140 0 0 0 0 0 0
 253       0 dm-0 7 0 56 1 9 0 72 1 0 2 2 0 0 0 0 0 0
"""
PCI_DISK = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"


def put(root: Path, files: dict[str, str]) -> None:
    """Write `files` (relative path -> text) under `root`."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def link(path: Path, target: Path) -> None:
    """A relative symlink to `target`, as sysfs has them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


def dev_link(sys: Path, path: Path) -> Path:
    """sys/dev/block/<major>:<minor> of the device holding `path` (the real one)."""
    dev = os.stat(path).st_dev
    return sys / f"dev/block/{os.major(dev)}:{os.minor(dev)}"


def mountinfo(tmp_path: Path, workdir: Path) -> str:
    """The root; two mounts stacked on the work directory (the later one counts); one below it;
    "my", a name-prefix of "my work" but not above it."""
    escaped = str(workdir).replace(" ", "\\040")
    return (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
        f"30 22 8:3 /data {escaped} rw,noatime - xfs /dev/sdb1 rw\n"
        f"31 22 0:40 / {escaped} rw,noatime shared:7 - ext4 /dev/disk/by-label/my\\040disk rw,data=ordered\n"
        f"32 31 0:41 / {escaped}/sub rw - tmpfs tmpfs rw\n"
        f"33 22 8:2 / {tmp_path}/my rw - ext4 /dev/sda2 rw\n"
    )


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, Path]:
    """A fixture machine: a partition sda1 of a SATA disk holds the work directory "my work"."""
    proc, sys, boot, workdir = tmp_path / "proc", tmp_path / "sys", tmp_path / "boot", tmp_path / "my work"
    workdir.mkdir()
    put(proc, {
        "sys/kernel/osrelease": RELEASE + "\n", "sys/kernel/version": "#1 SMP PREEMPT_DYNAMIC test\n",
        "cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet mitigations=off\n",
        "cpuinfo": CPUINFO, "meminfo": MEMINFO, "sys/vm/nr_hugepages": "16\n", "diskstats": DISKSTATS,
        "self/mountinfo": mountinfo(tmp_path, workdir),
    })
    with gzip.open(proc / "config.gz", "wt") as config:
        config.write(FUSE_CONFIG)
    cpus = "devices/system/cpu"
    put(sys, {
        "module/fuse/parameters/max_user_bgreq": "1638\n", "module/fuse/parameters/enable_uring": "N\n",
        f"{cpus}/online": "0-1\n", f"{cpus}/cpu0/cpufreq/scaling_governor": "performance\n",
        f"{cpus}/cpu1/cpufreq/scaling_governor": "powersave\n",
        f"{cpus}/cpuidle/current_driver": "intel_idle\n", f"{cpus}/cpuidle/current_governor": "menu\n",
        f"{cpus}/smt/control": "on\n", f"{cpus}/smt/active": "1\n",
        f"{cpus}/vulnerabilities/meltdown": "Not affected\n",
        f"{cpus}/vulnerabilities/spectre_v2": "Mitigation: Retpolines\n",
        "hypervisor/type": "xen\n", "class/dmi/id/sys_vendor": "QEMU\n",
        "class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
        "kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
        "kernel/mm/transparent_hugepage/defrag": "always defer defer+madvise [madvise] never\n",
        f"{PCI_DISK}/size": "2000000\n", f"{PCI_DISK}/sda1/size": "1000000\n", f"{PCI_DISK}/sda1/partition": "1\n",
        f"{PCI_DISK}/queue/scheduler": "mq-deadline kyber [bfq] none\n", f"{PCI_DISK}/queue/rotational": "0\n",
        f"{PCI_DISK}/queue/nr_requests": "64\n", f"{PCI_DISK}/queue/write_cache": "write back\n",
        f"{PCI_DISK}/queue/read_ahead_kb": "128\n", f"{PCI_DISK}/device/model": "Samsung SSD 870\n",
        f"{PCI_DISK}/device/vendor": "ATA     \n", f"{PCI_DISK}/device/queue_depth": "32\n",
        f"{PCI_DISK}/mq/0/nr_tags": "32\n", f"{PCI_DISK}/mq/1/nr_tags": "32\n",
        "bus/scsi/drivers/sd/uevent": "",
    })
    link(sys / PCI_DISK / "device/driver", sys / "bus/scsi/drivers/sd")
    link(dev_link(sys, workdir), sys / PCI_DISK / "sda1")
    return {"proc": proc, "sys": sys, "boot": boot, "workdir": workdir}


def _collect(machine: dict[str, Path], workdir: Path | None = None) -> dict:
    return collect(workdir or machine["workdir"], proc=machine["proc"], sys=machine["sys"], boot=machine["boot"])


def test_kernel_and_fuse(machine: dict[str, Path]) -> None:
    env = _collect(machine)
    assert env["kernel"] == {"release": RELEASE, "version": "#1 SMP PREEMPT_DYNAMIC test", "arch": os.uname().machine,
                             "cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet mitigations=off"}
    assert env["fuse"] == {
        "config": {"CONFIG_FUSE_FS": "m", "CONFIG_CUSE": "m", "CONFIG_FUSE_DAX": "n", "CONFIG_FUSE_PASSTHROUGH": "y"},
        "config_source": str(machine["proc"] / "config.gz"),
        "parameters": {"enable_uring": "N", "max_user_bgreq": "1638"},
    }
    json.dumps(env)


@pytest.mark.parametrize("config_gz", [None, b"not gzip"], ids=["missing", "corrupt"])
def test_kernel_config_falls_back_to_boot(machine: dict[str, Path], config_gz: bytes | None) -> None:
    (machine["proc"] / "config.gz").unlink()
    if config_gz is not None:
        (machine["proc"] / "config.gz").write_bytes(config_gz)
    put(machine["boot"], {f"config-{RELEASE}": "# CONFIG_FUSE_FS is not set\n# CONFIG_CUSE is not set\n"})
    fuse = _collect(machine)["fuse"]
    assert fuse["config"] == {"CONFIG_FUSE_FS": "n", "CONFIG_CUSE": "n"}
    assert fuse["config_source"] == str(machine["boot"] / f"config-{RELEASE}")


def test_cpu(machine: dict[str, Path]) -> None:
    assert _collect(machine)["cpu"] == {
        "model": "Test CPU @ 3.00GHz", "logical": 2, "online": "0-1", "governors": ["performance", "powersave"],
        "cpuidle": {"driver": "intel_idle", "governor": "menu"}, "smt": {"control": "on", "active": True},
        "vulnerabilities": {"meltdown": "Not affected", "spectre_v2": "Mitigation: Retpolines"},
        "virtualization": {"hypervisor_flag": True, "hypervisor_type": "xen", "sys_vendor": "QEMU",
                           "product_name": "Standard PC (Q35 + ICH9, 2009)"},
    }


def test_cpu_without_cpufreq_says_none(machine: dict[str, Path]) -> None:
    for cpu in ("cpu0", "cpu1"):
        shutil.rmtree(machine["sys"] / "devices/system/cpu" / cpu)
    assert _collect(machine)["cpu"]["governors"] == "none"


def test_memory(machine: dict[str, Path]) -> None:
    assert _collect(machine)["memory"] == {
        "total_bytes": 16000000 * 1024, "swap_total_bytes": 2000000 * 1024, "hugepage_size_bytes": 2 * MiB,
        "nr_hugepages": 16, "transparent_hugepage": {"enabled": "madvise", "defrag": "madvise"},
    }


def test_workdir_on_a_partition(machine: dict[str, Path]) -> None:
    workdir = _collect(machine)["workdir"]
    assert workdir["path"] == str(machine["workdir"])
    assert workdir["mount"] == {"mount_point": str(machine["workdir"]), "fs_type": "ext4",
                                "source": "/dev/disk/by-label/my disk", "options": "rw,noatime", "super_options": "rw,data=ordered", "device_number": "0:40"}
    assert workdir["device"] == {
        "name": "sda1", "parent": "sda", "size_bytes": 1000000 * 512, "model": "Samsung SSD 870",
        "vendor": "ATA", "driver": "sd", "virtual": False, "slaves": [], "dm_name": None, "dm_kind": None,
        "md_level": None, "loop_backing_file": None, "scheduler": "bfq", "rotational": False,
        "nr_requests": 64, "queue_depth": 32, "hw_queues": 2, "hw_queue_tags": 32, "write_cache": "write back",
        "read_ahead_kb": 128,
    }


def test_workdir_not_created_yet_is_described_by_its_parent(machine: dict[str, Path]) -> None:
    workdir = _collect(machine, machine["workdir"] / "later" / "run-1")["workdir"]
    assert workdir["path"] == str(machine["workdir"] / "later" / "run-1")
    assert workdir["mount"]["mount_point"] == str(machine["workdir"]) and workdir["device"]["name"] == "sda1"


def test_workdir_on_device_mapper(tmp_path: Path) -> None:
    sys, workdir = tmp_path / "sys", tmp_path / "work"
    workdir.mkdir()
    dm = "devices/virtual/block/dm-0"
    put(sys, {f"{dm}/size": "8\n", f"{dm}/dm/name": "vg-root\n", f"{dm}/dm/uuid": "LVM-Xy12\n",
              f"{dm}/queue/scheduler": "none\n", f"{dm}/queue/rotational": "0\n", f"{PCI_DISK}/sda2/partition": "2\n"})
    link(sys / dm / "slaves/sda2", sys / PCI_DISK / "sda2")
    link(dev_link(sys, workdir), sys / dm)
    device = collect(workdir, proc=tmp_path / "proc", sys=sys, boot=tmp_path / "boot")["workdir"]["device"]
    assert {k: device[k] for k in ("name", "parent", "virtual", "slaves", "dm_name", "dm_kind", "scheduler")} == {
        "name": "dm-0", "parent": None, "virtual": True, "slaves": ["sda2"], "dm_name": "vg-root",
        "dm_kind": "LVM", "scheduler": "none"}
    assert device["model"] is None and device["size_bytes"] == 8 * 512


def test_missing_files_give_none(tmp_path: Path) -> None:
    env = collect(tmp_path, proc=tmp_path / "proc", sys=tmp_path / "sys", boot=tmp_path / "boot")
    leaves = environment.flatten({group: env[group] for group in ("kernel", "fuse", "cpu", "memory", "workdir")})
    assert {key for key, value in leaves.items() if value is not None} == {"kernel.arch", "workdir.path"}
    json.dumps(env)


def test_unreadable_files_give_none(tmp_path: Path) -> None:
    (tmp_path / "a directory").mkdir()
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    (tmp_path / "text").write_text("abc\n")
    assert environment.read(tmp_path / "a directory") is None and environment.read(tmp_path / "binary") is None
    assert environment.read_int(tmp_path / "text") is None and environment.read_dir(tmp_path / "text") is None


def test_tool_version_and_this_checkout() -> None:
    tool = environment.tool_info()
    assert tool["version"] == bench.__version__
    if (Path(bench.__file__).resolve().parent.parent / ".git").exists() and shutil.which("git"):
        assert len(tool["commit"]) == 40 and isinstance(tool["dirty"], bool)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_checkout_state(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    package = repo / "pkg"
    put(package, {"__init__.py": ""})

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    put(repo, {"untracked.txt": "x"})  # untracked files leave a checkout clean
    assert environment.checkout_state(package) == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    put(package, {"__init__.py": "changed = True\n"})
    assert environment.checkout_state(package)["dirty"] is True
    put(repo, {".venv/site-packages/pkg/__init__.py": ""})  # an installed copy inside the checkout
    assert environment.checkout_state(repo / ".venv/site-packages/pkg") == {}
    assert environment.checkout_state(tmp_path / "elsewhere" / "pkg") == {}


def test_differences() -> None:
    a = {"kernel": {"release": "6.1", "cmdline": "quiet"}, "cpu": {"governors": ["performance"]},
         "tool": {"version": "0.2"}, "workdir": {"device": None}}
    b = {"kernel": {"release": "6.2", "cmdline": "quiet"}, "cpu": {"governors": ["powersave"]},
         "tool": {"version": "0.2", "commit": "abc"}, "workdir": {"device": {"name": "vda"}}}
    assert differences(a, b) == [("cpu.governors", ["performance"], ["powersave"]), ("kernel.release", "6.1", "6.2"),
                                 ("tool.commit", None, "abc"), ("workdir.device.name", None, "vda")]
    assert differences(a, a) == []


def test_read_diskstats_and_subtraction(machine: dict[str, Path]) -> None:
    proc = machine["proc"]
    assert read_diskstats("sda", proc=proc) == DiskCounters(1000, 80000 * 512, 2000, 160000 * 512)
    before = read_diskstats("sda1", proc=proc)
    assert before == DiskCounters(100, 800 * 512, 200, 1600 * 512)
    (proc / "diskstats").write_text(DISKSTATS.replace("sda1 100 1 800", "sda1 103 1 824").replace(
        "200 2 1600", "210 2 2400"))
    assert read_diskstats("sda1", proc=proc) - before == DiskCounters(3, 24 * 512, 10, 800 * 512)
    assert read_diskstats("sdb", proc=proc) is None
    assert read_diskstats("sda", proc=proc / "missing") is None


def test_device_of(machine: dict[str, Path], tmp_path: Path) -> None:
    proc, sys = machine["proc"], machine["sys"]
    assert device_of(machine["workdir"], proc=proc, sys=sys) == "sda1"
    assert device_of(machine["workdir"], proc=proc, sys=tmp_path / "no-sys") is None  # tmpfs, FUSE...
    (proc / "diskstats").write_text(DISKSTATS.replace("sda1", "sdz1"))
    assert device_of(machine["workdir"], proc=proc, sys=sys) is None  # not a diskstats device


# -- the real machine ----------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def var_tmp() -> Iterator[Path]:
    """A directory under /var/tmp (on disk, unlike /tmp on many machines), removed afterwards."""
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="fusebench-env-") as path:
        yield Path(path)


def _findmnt(path: Path, column: str) -> str:
    return subprocess.run(["findmnt", "-no", column, "--target", str(path)], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


@pytest.mark.integration
@needs_root
@pytest.mark.skipif(shutil.which("findmnt") is None, reason="findmnt not installed")
def test_collect_on_this_machine(var_tmp: Path) -> None:
    env = collect(var_tmp)
    json.dumps(env)
    assert env["kernel"]["release"] == os.uname().release and env["kernel"]["cmdline"]
    fuse = env["fuse"]
    if Path("/proc/config.gz").exists() or Path(f"/boot/config-{os.uname().release}").exists():
        assert fuse["config"]["CONFIG_FUSE_FS"] in ("y", "m")
        if passthrough_unavailable_reason() is None:
            assert fuse["config"]["CONFIG_FUSE_PASSTHROUGH"] == "y"
    if Path("/sys/module/fuse/parameters").is_dir():
        assert "max_user_bgreq" in fuse["parameters"]
    cpu = env["cpu"]
    assert cpu["model"] and cpu["logical"] >= 1 and cpu["online"] and cpu["governors"]
    assert cpu["vulnerabilities"] and cpu["smt"]["control"]
    assert env["memory"]["total_bytes"] > 0 and env["memory"]["transparent_hugepage"]["enabled"]
    mount = env["workdir"]["mount"]
    assert (mount["fs_type"], mount["mount_point"]) == (_findmnt(var_tmp, "FSTYPE"), _findmnt(var_tmp, "TARGET"))
    if _findmnt(var_tmp, "SOURCE").startswith("/dev/"):
        device = env["workdir"]["device"]
        assert device is not None and device["name"] == device_of(var_tmp)
        assert device["scheduler"] and device["size_bytes"] > 0 and device["rotational"] is not None
    assert env["tool"]["version"] == bench.__version__ and env["python"]["version"]


@pytest.mark.integration
@needs_root
def test_diskstats_count_a_synced_write_and_a_direct_read(var_tmp: Path) -> None:
    name = device_of(var_tmp)
    if name is None:
        pytest.skip(f"{var_tmp} is not on a block device")
    size, path, chunk = 8 * MiB, var_tmp / "data", os.urandom(MiB)
    before = read_diskstats(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for _ in range(size // MiB):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    wrote = read_diskstats(name) - before
    # The data reached the device, and not 8x it (what counting 4 KiB sectors would give).
    assert wrote.writes >= 1 and size <= wrote.write_bytes < 3 * size
    buffer = mmap.mmap(-1, MiB)  # page-aligned, as O_DIRECT needs
    before = read_diskstats(name)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        while os.readv(fd, [buffer]):
            pass
    finally:
        os.close(fd)
    got = read_diskstats(name) - before
    assert got.reads >= 1 and size <= got.read_bytes < 3 * size
