"""bench.cleanup: mount table parsing, the state file, and clearing what a killed runner left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import cleanup
from bench.cleanup import ProcessId
from bench.scenario import ExternalTarget
from bench.targets import open_target

REPO = Path(__file__).resolve().parents[1]
FOREGROUND = ["bindfs", "-f", "{source}", "{mountpoint}"]
DAEMONIZING = ["bindfs", "{source}", "{mountpoint}"]

# A runner that mounts, holds a file open on the mount (as fio would), then waits to be killed.
RUNNER = """
import sys, time
from pathlib import Path
from bench.scenario import ExternalTarget
from bench.targets import open_target
target = ExternalTarget(name="left", type="external", command=sys.argv[3:])
with open_target(target, Path(sys.argv[1]), Path(sys.argv[2])) as mounted:
    held = open(mounted.path / "data")
    print(mounted.mountpoint, mounted.daemon_pid, flush=True)
    time.sleep(600)
"""


def ended(proc: psutil.Process) -> bool:
    """Gone, or a zombie nobody reaped yet (init here may be slow to reap orphans)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def python(script: str, *args: str, **popen_options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, **popen_options)


def test_parse_mountinfo_decodes_octal_escapes() -> None:
    line = (b"43 27 0:40 / /tmp/a\\040b\\011c\\134d rw,relatime shared:1 master:2 - fuse.bindfs "
            b"/src\\040dir rw,user_id=0\n"
            b"44 27 0:41 / /sys/fs/fuse/connections rw - fusectl fusectl rw\n")
    fuse, ctl = cleanup.parse_mountinfo(line)
    assert fuse.mountpoint == "/tmp/a b\tc\\d" and fuse.source == "/src dir"
    assert fuse.fstype == "fuse.bindfs" and (fuse.major, fuse.minor) == (0, 40) and fuse.is_fuse
    assert ctl.fstype == "fusectl" and not ctl.is_fuse


def test_state_file_records_and_forgets_entries(tmp_path: Path) -> None:
    assert cleanup.state_path() == tmp_path / "fusebench-state.json"
    me = ProcessId.of(os.getpid())
    entry = cleanup.register("t", mountpoint=tmp_path / "mnt", processes=[me])
    cleanup.update(entry, connection=77, add_processes=[me])
    [recorded] = json.loads(cleanup.state_path().read_text())["entries"]
    assert recorded["mountpoint"] == str(tmp_path / "mnt") and recorded["connection"] == 77
    assert recorded["processes"] == [list(me)] and recorded["owner"] == list(me)
    cleanup.unregister(entry)
    assert cleanup.entries() == []
    assert not list(tmp_path.glob(".state.*"))  # no temp files left by the atomic replace


def test_entries_of_a_live_run_are_left_alone(tmp_path: Path) -> None:
    cleanup.register("mine", mountpoint=tmp_path / "mnt")
    assert cleanup.clear_leftovers() == []
    assert len(cleanup.entries()) == 1


def _register_from_a_finished_process(pid: int, create_time: float) -> None:
    script = f"from bench import cleanup; cleanup.register('fake', processes=[cleanup.ProcessId({pid}, {create_time!r})])"
    assert python(script).wait(30) == 0


def test_a_reused_pid_is_not_killed() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        real = ProcessId.of(sleeper.pid)
        _register_from_a_finished_process(sleeper.pid, real.create_time - 100.0)
        messages = cleanup.clear_leftovers()
        assert sleeper.poll() is None
        assert messages == [f"left pid {sleeper.pid} alone: it is a different process now (start time differs)"]
        assert cleanup.entries() == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_recorded_process_of_a_dead_run_is_ended() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _register_from_a_finished_process(sleeper.pid, ProcessId.of(sleeper.pid).create_time)
        messages = cleanup.clear_leftovers()
        sleeper.wait(5)  # psutil may have reaped it already (it is our child here): the exit code is lost
        assert messages == [f"ended leftover process {sleeper.pid} (fake) from pid {messages[0].split()[-1]}"]
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.integration
@pytest.mark.parametrize("command", [FOREGROUND, DAEMONIZING], ids=["foreground", "daemonizing"])
@pytest.mark.parametrize("daemon_killed", [False, True], ids=["daemon-alive", "daemon-dead"])
def test_mount_of_a_sigkilled_runner_is_cleared(require_root, command, daemon_killed: bool,
                                                source: Path, tmp_path: Path) -> None:
    runner = python(RUNNER, str(source), str(tmp_path / "work"), *command, stdout=subprocess.PIPE, text=True)
    try:
        mountpoint, daemon_pid = runner.stdout.readline().split()
    finally:
        runner.kill()
        runner.wait()
    daemon = psutil.Process(int(daemon_pid))
    if daemon_killed:
        daemon.kill()
        deadline = time.monotonic() + 5
        while not ended(daemon) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert cleanup.is_mounted(mountpoint)

    messages = cleanup.clear_leftovers()

    assert f"cleared leftover mount {mountpoint} from pid {runner.pid}" in messages
    assert not cleanup.is_mounted(mountpoint)
    assert ended(daemon)
    assert cleanup.entries() == []
    assert cleanup.clear_leftovers() == []


@pytest.mark.integration
def test_mount_table_handles_escaped_paths(require_root, source: Path, tmp_path: Path) -> None:
    target = ExternalTarget(name="spaced", type="external", command=FOREGROUND)
    with open_target(target, source, tmp_path / "work dir\\with escapes") as mounted:
        assert " " in str(mounted.mountpoint) and cleanup.is_mounted(mounted.mountpoint)
        assert cleanup.connection_id(mounted.mountpoint) == os.minor(os.stat(mounted.mountpoint).st_dev)
    assert not cleanup.is_mounted(mounted.mountpoint)


@pytest.mark.integration
def test_busy_mount_is_detached_after_the_timeout(bindfs_mount) -> None:
    (bindfs_mount.path / "f").write_text("x")
    with open(bindfs_mount.path / "f") as held:
        started = time.monotonic()
        cleanup.unmount(bindfs_mount.mountpoint, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 5
        assert not cleanup.is_mounted(bindfs_mount.mountpoint)
        assert held.read() == "x"  # a lazily detached mount still serves open files


@pytest.mark.integration
def test_abort_connection_releases_a_client_of_a_hung_daemon(bindfs_mount) -> None:
    (bindfs_mount.path / "f").write_text("x")
    daemon = psutil.Process(bindfs_mount.daemon_pid)
    fusectl_was_mounted = cleanup.is_mounted(cleanup.FUSECTL_DIR)
    daemon.suspend()
    try:
        client = python("import os, sys; os.listdir(sys.argv[1])", str(bindfs_mount.path / "sub"),
                        stderr=subprocess.DEVNULL)
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(0.5)  # blocked on the hung daemon
        assert cleanup.abort_connection(bindfs_mount.connection)
        assert client.wait(5) != 0
    finally:
        daemon.resume()
    assert cleanup.is_mounted(cleanup.FUSECTL_DIR) == fusectl_was_mounted
    assert cleanup.abort_connection(999_999) is False
