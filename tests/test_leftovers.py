"""bench.leftovers: the registry, and clearing what a killed runner left (mounts, processes, settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import leftovers
from bench.fusefs import mounts
from bench.processes import ProcessId

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


def test_state_file_records_and_forgets_entries(tmp_path: Path) -> None:
    assert leftovers.state_path() == tmp_path / "fusebench-state.json"
    me = ProcessId.of(os.getpid())
    entry = leftovers.register("t", mountpoint=tmp_path / "mnt", processes=[me])
    leftovers.update(entry, connection=77, add_processes=[me])
    [recorded] = json.loads(leftovers.state_path().read_text())["entries"]
    assert recorded["mountpoint"] == str(tmp_path / "mnt") and recorded["connection"] == 77
    assert recorded["processes"] == [list(me)] and recorded["owner"] == list(me)
    leftovers.unregister(entry)
    assert leftovers.entries() == []
    assert not list(tmp_path.glob(".state.*"))  # no temp files left by the atomic replace


def test_settings_of_a_dead_run_are_written_back(tmp_path: Path) -> None:
    setting = tmp_path / "nr_hugepages"
    setting.write_text("12\n")
    script = f"from bench import leftovers; leftovers.register('hugepages', settings={{{str(setting)!r}: '0'}})"
    assert python(script).wait(30) == 0
    assert leftovers.clear_leftovers()[0].startswith(f"restored {setting} to 0 (hugepages) from pid ")
    assert setting.read_text() == "0\n"
    assert leftovers.entries() == []


def test_settings_are_written_back_after_the_mounts_and_processes_of_the_same_crash(tmp_path: Path) -> None:
    setting = tmp_path / "enable_uring"
    setting.write_text("Y\n")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        # As a run registers them: the setting first, then the mount and its server.
        script = (f"from bench import leftovers, processes; "
                  f"leftovers.register('enable_uring', settings={{{str(setting)!r}: 'N'}}); "
                  f"leftovers.register('fake', processes=[processes.ProcessId.of({sleeper.pid})])")
        assert python(script).wait(30) == 0
        messages = leftovers.clear_leftovers()
        assert [message.split()[0] for message in messages] == ["ended", "restored"]
        assert setting.read_text() == "N\n" and leftovers.entries() == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_cgroup_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    cgroup = tmp_path / "fusebench-1-1"
    cgroup.mkdir()
    gone = tmp_path / "fusebench-1-2"  # removed by its run, which was killed before unregistering it
    script = (f"from pathlib import Path; from bench import leftovers; "
              f"leftovers.register('memcg', cgroup=Path({str(cgroup)!r})); "
              f"leftovers.register('memcg', cgroup=Path({str(gone)!r}))")
    assert python(script).wait(30) == 0
    assert [entry["cgroup"] for entry in leftovers.entries()] == [str(cgroup), str(gone)]
    messages = leftovers.clear_leftovers()
    assert len(messages) == 1 and messages[0].startswith(f"removed leftover cgroup {cgroup} (memcg) from pid ")
    assert not cgroup.exists() and leftovers.entries() == []


def test_remove_cgroup_moves_the_processes_left_to_the_parent_first(tmp_path: Path, monkeypatch) -> None:
    cgroup = tmp_path / "child"
    cgroup.mkdir()
    (cgroup / "cgroup.procs").write_text("4242\n")
    moved = []
    real_rmdir = os.rmdir

    def rmdir(path) -> None:  # a cgroup directory goes away with its files, once no process is in it
        assert moved == ["4242\n"]
        (Path(path) / "cgroup.procs").unlink()
        real_rmdir(path)

    real_write = Path.write_text
    monkeypatch.setattr(Path, "write_text", lambda self, text: moved.append(text) if self == tmp_path / "cgroup.procs"
                        else real_write(self, text))
    monkeypatch.setattr(leftovers.os, "rmdir", rmdir)
    leftovers.remove_cgroup(cgroup)
    assert not cgroup.exists()
    leftovers.remove_cgroup(cgroup)  # gone already: fine


def test_entries_of_a_live_run_are_left_alone(tmp_path: Path) -> None:
    leftovers.register("mine", mountpoint=tmp_path / "mnt")
    assert leftovers.clear_leftovers() == []
    assert len(leftovers.entries()) == 1


def _register_from_a_finished_process(pid: int, create_time: float) -> None:
    script = f"from bench import leftovers, processes; leftovers.register('fake', processes=[processes.ProcessId({pid}, {create_time!r})])"
    assert python(script).wait(30) == 0


def test_a_reused_pid_is_not_killed() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        real = ProcessId.of(sleeper.pid)
        _register_from_a_finished_process(sleeper.pid, real.create_time - 100.0)
        messages = leftovers.clear_leftovers()
        assert sleeper.poll() is None
        assert messages == [f"left pid {sleeper.pid} alone: it is a different process now (start time differs)"]
        assert leftovers.entries() == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_recorded_process_of_a_dead_run_is_ended() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _register_from_a_finished_process(sleeper.pid, ProcessId.of(sleeper.pid).create_time)
        messages = leftovers.clear_leftovers()
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
    assert mounts.is_mounted(mountpoint)

    messages = leftovers.clear_leftovers()

    assert f"cleared leftover mount {mountpoint} from pid {runner.pid}" in messages
    assert not mounts.is_mounted(mountpoint)
    assert ended(daemon)
    assert leftovers.entries() == []
    assert leftovers.clear_leftovers() == []


