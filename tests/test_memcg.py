"""bench.memcg: finding the memory controller (unit), and for real (integration): the dentries
and FUSE inodes a client made are forgotten when its memory cgroup is reclaimed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fusefs_helpers import mount

from bench import leftovers, system
from bench.memcg import (
    Hierarchy,
    MemcgError,
    MemoryCgroup,
    find_hierarchy,
    memcg_unavailable_reason,
    memory_cgroup,
)

V1_MOUNTINFO = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / {root}/unified rw,nosuid - cgroup2 cgroup2 rw
36 30 0:32 / {root}/memory rw,nosuid - cgroup cgroup rw,memory
37 30 0:33 / {root}/pids rw,nosuid - cgroup cgroup rw,pids
"""
V2_MOUNTINFO = "31 25 0:27 / {root}/v2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def mountinfo(tmp_path: Path, template: str, controllers: str = "") -> Path:
    """A mountinfo file, its cgroup2 hierarchy (tmp_path/unified or tmp_path/v2) offering `controllers`."""
    for name in ("unified", "v2"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "cgroup.controllers").write_text(controllers)
    path = tmp_path / "mountinfo"
    path.write_text(template.format(root=tmp_path))
    return path


def test_v1_memory_is_used_when_the_v2_hierarchy_has_no_memory_controller(tmp_path: Path) -> None:
    assert find_hierarchy(mountinfo(tmp_path, V1_MOUNTINFO)) == Hierarchy(1, tmp_path / "memory")
    assert find_hierarchy(mountinfo(tmp_path, V1_MOUNTINFO, "cpu io memory pids")) == Hierarchy(2, tmp_path / "unified")
    assert find_hierarchy(mountinfo(tmp_path, V2_MOUNTINFO, "cpu io memory")) == Hierarchy(2, tmp_path / "v2")
    assert find_hierarchy(mountinfo(tmp_path, V2_MOUNTINFO, "cpu io")) is None


def test_why_no_memory_cgroup_can_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert memcg_unavailable_reason() == "memory cgroups need root"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert memcg_unavailable_reason(mountinfo(tmp_path, V2_MOUNTINFO, "cpu")).startswith("no memory controller")
    with pytest.raises(MemcgError, match="^t: no memory controller"):
        with memory_cgroup("t", mountinfo(tmp_path, V2_MOUNTINFO, "cpu")):
            pass
    v2 = mountinfo(tmp_path, V2_MOUNTINFO, "cpu memory")
    (tmp_path / "v2" / "cgroup.subtree_control").write_text("cpu\n")
    # Not enabled for the root's children: turning it on is the operator's call.
    assert "echo +memory > " in memcg_unavailable_reason(v2)
    (tmp_path / "v2" / "cgroup.subtree_control").write_text("cpu memory\n")
    assert memcg_unavailable_reason(v2) is None


def test_usage_and_the_v1_refusal_to_empty_a_cgroup_with_processes(tmp_path: Path) -> None:
    (tmp_path / "memory.usage_in_bytes").write_text("4096\n")
    (tmp_path / "memory.current").write_text("8192\n")
    (tmp_path / "cgroup.procs").write_text("12\n34\n")
    assert MemoryCgroup(tmp_path, 1).usage_bytes() == 4096
    assert MemoryCgroup(tmp_path, 2).usage_bytes() == 8192
    with pytest.raises(MemcgError, match=r"memory.force_empty \(cgroup v1\) needs it empty of processes, and 2 are left"):
        MemoryCgroup(tmp_path, 1).reclaim()
    assert not (tmp_path / "memory.force_empty").exists()
    (tmp_path / "cgroup.procs").write_text("")
    assert MemoryCgroup(tmp_path, 1).reclaim() >= 0
    assert (tmp_path / "memory.force_empty").read_text() == "0\n"
    assert MemoryCgroup(tmp_path, 2).reclaim() >= 0
    assert (tmp_path / "memory.reclaim").read_text() == f"{1 << 20}\n"  # at least 1 MiB is asked for


# -- for real


def dentries() -> int:
    found = system.slab_objects(["dentry"]).get("dentry")
    assert found is not None, "/proc/slabinfo has no dentry cache"
    return found[0]


def settled_dentries() -> int:
    """The dentry count once the frees queued behind an RCU grace period are done (the machine
    is not idle: it is the count that stays within 0.5% over 0.3 s)."""
    time.sleep(0.5)
    previous = dentries()
    for _ in range(50):
        time.sleep(0.3)
        now = dentries()
        if abs(now - previous) <= previous // 200:
            return now
        previous = now
    return previous


def wait_for(predicate, timeout: float = 5.0) -> float:
    """Seconds until `predicate()` held (polling), or -1."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    return -1.0


def run_inside(group: MemoryCgroup, code: str, argument: str) -> None:
    """Run Python `code` (its argument in sys.argv[1]) in a process moved into `group` before it
    starts working, as the fd-pressure steps move their clients."""
    process = subprocess.Popen([sys.executable, "-c", f"import sys; sys.stdin.readline(); {code}", argument],
                               stdin=subprocess.PIPE)
    group.add(process.pid)
    process.communicate(b"go\n", timeout=120)
    assert process.returncode == 0


STAT_ALL = "import os; [os.stat(os.path.join(sys.argv[1], name)) for name in sorted(os.listdir(sys.argv[1]))]"
OPEN_ALL = "import os; [os.close(os.open(os.path.join(sys.argv[1], name), os.O_RDONLY)) for name in sorted(os.listdir(sys.argv[1]))]"


@pytest.mark.integration
def test_reclaiming_a_clients_cgroup_frees_the_dentries_it_made(require_root, tmp_path: Path) -> None:
    count = 20_000
    files = tmp_path / "files"
    files.mkdir()
    for index in range(count):
        (files / f"f{index:06d}").write_bytes(b"x")
    assert memcg_unavailable_reason() is None
    with memory_cgroup("test") as group:
        assert group.path.is_dir() and [e["cgroup"] for e in leftovers.entries()] == [str(group.path)]
        system.drop_caches(level=2)
        before = settled_dentries()
        run_inside(group, STAT_ALL, str(files))
        after, charged = dentries(), group.usage_bytes()
        # The slab counters are the whole machine's: others' activity blurs them, the cgroup's own
        # memory does not (20,000 dentries and the client's few: ~4 MB, and what it read).
        assert after - before >= 0.8 * count, f"the client's stats made {after - before} dentries"
        assert charged >= count * 150
        seconds = group.reclaim()
        freed = wait_for(lambda: after - dentries() >= 0.8 * count and group.usage_bytes() < charged / 10)
        print(f"dentries {before} -> {after} ({charged} bytes charged); reclaim {seconds:.3f} s, "
              f"{after - dentries()} freed {freed:.2f} s later, {group.usage_bytes()} bytes left charged")
        assert group.usage_bytes() < charged / 10
        assert freed >= 0, f"reclaim freed {after - dentries()} of the {after - before} dentries"
    assert not group.path.exists() and leftovers.entries() == []


@pytest.mark.integration
def test_a_process_still_inside_is_moved_out_when_the_cgroup_goes(require_root) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with memory_cgroup("test") as group:
            group.add(sleeper.pid)
            assert group.pids() == [sleeper.pid]
            if group.version == 1:
                with pytest.raises(MemcgError, match="1 are left"):
                    group.reclaim()
        assert not group.path.exists() and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.integration
def test_reclaim_makes_the_kernel_forget_fuse_inodes_and_the_server_close_cached_backing_ids(
        require_root, tmp_path: Path) -> None:
    count = 5000
    names = {f"f{index:06d}": b"x" for index in range(count)}
    args = ("--mode", "passthrough", "--fd-policy", "cache", "--cache-size", "10000")
    with mount(tmp_path, *args, files=names) as mounted, memory_cgroup("test") as group:
        run_inside(group, OPEN_ALL, str(mounted.path))
        held = mounted.wait_stats(lambda stats: stats["backing_ids"] >= count)["backing_ids"]
        assert held == count
        seconds = group.reclaim()
        started = time.monotonic()
        left = mounted.wait_stats(lambda stats: stats["backing_ids"] <= count // 20)["backing_ids"]
        print(f"backing ids {held} -> {left} {time.monotonic() - started:.2f} s after a {seconds:.3f} s reclaim")
        assert left <= count // 20
