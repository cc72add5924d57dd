"""bench.targets on real mounts: native, bindfs in the foreground and daemonized, failures."""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import leftovers, targets
from bench.fusefs import mounts
from bench.scenario import ExternalTarget, FuseTarget, NativeTarget, PassthroughTarget
from bench.targets import (
    MountedTarget,
    TargetError,
    TargetUnavailable,
    builtin_argv,
    open_target,
    target_unavailable_reason,
)

FOREGROUND = ["bindfs", "-f", "{source}", "{mountpoint}"]
DAEMONIZING = ["bindfs", "{source}", "{mountpoint}"]


def external(command: list[str], **options) -> ExternalTarget:
    return ExternalTarget(name="ext", type="external", command=command, **options)


def assert_stopped(mounted: MountedTarget) -> None:
    assert not mounts.is_mounted(mounted.mountpoint)
    assert not psutil.pid_exists(mounted.daemon_pid) or psutil.Process(mounted.daemon_pid).status() == psutil.STATUS_ZOMBIE
    assert leftovers.entries() == []


def test_native_is_the_source_itself(source: Path, tmp_path: Path) -> None:
    with open_target(NativeTarget(name="native", type="native"), source, tmp_path / "work") as mounted:
        assert mounted.path == source
        assert mounted.mountpoint is None and mounted.daemon_pid is None and mounted.connection is None
        assert mounted.read_stats() is None


def test_unknown_command_is_unavailable(source: Path, tmp_path: Path) -> None:
    target = external(["no-such-fuse-server-xyz", "{source}", "{mountpoint}"])
    assert "not found on PATH" in target_unavailable_reason(target)
    with pytest.raises(TargetUnavailable, match="no-such-fuse-server-xyz"):
        with open_target(target, source, tmp_path / "work"):
            pass


def test_uring_targets_are_unavailable_on_a_kernel_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the targets that need FUSE over io_uring: the scenario's others still run."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):  # FUSE targets are unavailable anyway
        pytest.fail("the unit tests run as root (without capabilities) on a machine with /dev/fuse")
    monkeypatch.setattr(targets, "uring_unavailable_reason", lambda: "the kernel has no FUSE over io_uring")
    assert target_unavailable_reason(FuseTarget(name="r", type="fuse", transport="uring")) == \
        "the kernel has no FUSE over io_uring"
    assert target_unavailable_reason(external(["true", "{source}", "{mountpoint}"], needs_uring=True)) == "the kernel has no FUSE over io_uring"
    assert target_unavailable_reason(FuseTarget(name="d", type="fuse")) is None
    assert target_unavailable_reason(external(["true", "{source}", "{mountpoint}"])) is None


def test_transport_options_go_only_to_the_transport_that_uses_them(tmp_path: Path) -> None:
    dev = builtin_argv(FuseTarget(name="d", type="fuse", threads=3), Path("/s"), Path("/m"), tmp_path / "s", 1, None)
    uring = builtin_argv(FuseTarget(name="u", type="fuse", transport="uring", threads=3), Path("/s"), Path("/m"),
                         tmp_path / "s", 1, None)
    assert "--threads" in dev and "--ring-depth" not in dev
    assert "--ring-depth" in uring and "--threads" not in uring


def test_builtin_argv_maps_options_to_flags(tmp_path: Path) -> None:
    target = PassthroughTarget(name="pt", type="passthrough", threads=4, fd_policy="cache")
    argv = builtin_argv(target, Path("/src"), Path("/mnt"), tmp_path / "s.json", 0.5, 512)
    assert argv[:7] == [sys.executable, "-m", "bench.fusefs", "/src", "/mnt", "--mode", "passthrough"]
    flags = " ".join(argv[7:])
    for expected in ("--fd-policy cache", "--cache-size 1024", "--threads 4", "--max-pages 256",
                     "--xattr off", f"--stats-file {tmp_path / 's.json'}", "--stats-interval 0.5", "--nofile 512"):
        assert expected in flags
    assert "--keep-cache" not in flags and "--direct-io" not in flags
    plain = builtin_argv(FuseTarget(name="f", type="fuse", writeback_cache=True, direct_io=True), Path("/s"), Path("/m"),
                         tmp_path / "s.json", 0.25, None)
    assert plain[plain.index("--mode") + 1] == "plain" and "--writeback-cache" in plain and "--direct-io" in plain
    assert "--fd-policy" not in plain and "--threads" not in plain and "--nofile" not in plain


@pytest.mark.integration
@pytest.mark.parametrize("command", [FOREGROUND, DAEMONIZING], ids=["foreground", "daemonizing"])
def test_bindfs_mounts_serves_and_unmounts(require_root, command, source: Path, tmp_path: Path) -> None:
    with open_target(external(command), source, tmp_path / "work") as mounted:
        assert mounted.path == mounted.mountpoint == (tmp_path / "work" / "mnt-ext").resolve()
        assert mounts.is_mounted(mounted.mountpoint)
        assert (mounted.path / "data").read_text() == "hello through fuse\n"
        assert psutil.Process(mounted.daemon_pid).name() == "bindfs"
        assert mounted.daemon_pid in mounts.connection_holders(mounted.connection)
        [entry] = leftovers.entries()
        assert entry["mountpoint"] == str(mounted.mountpoint) and entry["connection"] == mounted.connection
        assert mounted.daemon_pid in [pid for pid, _ in entry["processes"]]
    assert_stopped(mounted)


@pytest.mark.integration
def test_server_behind_a_wrapper_is_found_by_its_fuse_device(require_root, source: Path, tmp_path: Path) -> None:
    wrapper = external(["sh", "-c", 'bindfs -f "$0" "$1"; exit 0', "{source}", "{mountpoint}"])
    with open_target(wrapper, source, tmp_path / "work") as mounted:
        assert psutil.Process(mounted.daemon_pid).name() == "bindfs"
        assert psutil.Process(mounted.daemon_pid).ppid() != os.getpid()  # the child of sh, not sh
    assert_stopped(mounted)


@pytest.mark.integration
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_unmounts_when_the_body_raises(require_root, error, source: Path, tmp_path: Path) -> None:
    with pytest.raises(error):
        with open_target(external(DAEMONIZING), source, tmp_path / "work") as mounted:
            raise error("body failed")
    assert_stopped(mounted)


@pytest.mark.integration
def test_sigkilled_daemon_leaves_no_mount(require_root, source: Path, tmp_path: Path) -> None:
    with open_target(external(FOREGROUND), source, tmp_path / "work") as mounted:
        psutil.Process(mounted.daemon_pid).kill()
        psutil.Process(mounted.daemon_pid).wait(5)
        with pytest.raises(OSError):
            os.listdir(mounted.path)  # ENOTCONN: the server is gone
    assert_stopped(mounted)


@pytest.mark.integration
def test_stopped_daemon_still_unmounts(require_root, source: Path, tmp_path: Path) -> None:
    with open_target(external(FOREGROUND), source, tmp_path / "work") as mounted:
        psutil.Process(mounted.daemon_pid).suspend()  # a hung daemon
    assert_stopped(mounted)


@pytest.mark.integration
def test_hung_daemon_with_a_blocked_client_is_detached_and_ended(require_root, source: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with open_target(external(FOREGROUND, stop_timeout=1.0), source, tmp_path / "work") as mounted:
        psutil.Process(mounted.daemon_pid).suspend()
        client = subprocess.Popen([sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])",
                                   str(mounted.path / "sub")], stderr=subprocess.DEVNULL)
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(0.3)  # blocked on the hung daemon: the mount is busy
    assert time.monotonic() - started < 10
    assert_stopped(mounted)
    client.wait(5)


@pytest.mark.integration
def test_server_that_never_mounts_times_out_quoting_its_output(require_root, source: Path, tmp_path: Path) -> None:
    script = "import sys, time; print('cannot serve this mountpoint', file=sys.stderr, flush=True); time.sleep(60)"
    target = external([sys.executable, "-c", script, "{mountpoint}"], ready_timeout=1.0)
    with pytest.raises(TargetError, match=r"did not appear within 1 s(.|\n)*cannot serve this mountpoint"):
        with open_target(target, source, tmp_path / "work"):
            pass
    assert leftovers.entries() == []


@pytest.mark.integration
def test_server_that_fails_reports_its_exit_status_and_stderr(require_root, source: Path, tmp_path: Path) -> None:
    target = external(["bindfs", "-f", str(tmp_path / "does-not-exist"), "{mountpoint}"])
    with pytest.raises(TargetError, match=r"exited with status \d+(.|\n)*does-not-exist"):
        with open_target(target, source, tmp_path / "work"):
            pass


# A daemonizing server that fails: bindfs without -f given a missing source (it says why), and
# one that exits 255 printing nothing, as libfuse's passthrough_hp does with its error in syslog.
@pytest.mark.integration
@pytest.mark.parametrize("command, status, printed", [
    (["bindfs", "/does-not-exist", "{mountpoint}"], 1, "Failed to resolve source directory `/does-not-exist'"),
    (["sh", "-c", "exit 255", "quiet-server", "{mountpoint}"], 255, "(nothing)"),
], ids=["bindfs-daemonizing", "silent"])
def test_a_daemonizing_server_that_fails_names_its_command_status_output_and_the_fix(
        require_root, command, status, printed, source: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TargetError) as failed:
        with open_target(external(command), source, tmp_path / "work"):
            pass
    message = str(failed.value)
    mountpoint = (tmp_path / "work" / "mnt-ext").resolve()
    assert f"the server command `{shlex.join(external(command).argv(source, mountpoint))}`" in message
    assert f"exited with status {status} before mounting {mountpoint}" in message
    assert f"it printed ({tmp_path.resolve() / 'work' / 'ext.server.log'}):\n{printed}" in message
    assert message.endswith("\nhint: " + targets.DAEMONIZED_HINT) and "in the foreground (e.g. with -f" in message
    assert time.monotonic() - started < 5  # told at once, not after ready_timeout
    assert not mounts.is_mounted(mountpoint) and leftovers.entries() == []


def test_mountpoint_is_recorded_before_the_server_starts(require_root, source: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed the moment the mount appears must already have recorded the mountpoint,
    or the next run cannot clear it (seen once in CI: bindfs mounted before the runner had
    written its state file). The process start is replaced to look at the state file then."""
    recorded: list[list[str]] = []

    def start(argv: list[str], log_file: Path, nofile: int | None) -> subprocess.Popen:
        recorded.append([entry["mountpoint"] for entry in leftovers.entries()])
        raise OSError(errno.EACCES, "not started")

    monkeypatch.setattr(targets, "_start", start)
    with pytest.raises(TargetError, match="cannot start"):
        with open_target(external([sys.executable, "{mountpoint}"]), source, tmp_path / "work"):
            pass
    assert recorded == [[os.path.realpath(tmp_path / "work" / "mnt-ext")]]
    assert leftovers.entries() == []


@pytest.mark.integration
def test_nofile_limits_an_external_server(require_root, source: Path, tmp_path: Path) -> None:
    with open_target(external(FOREGROUND), source, tmp_path / "work", nofile=123) as mounted:
        assert psutil.Process(mounted.daemon_pid).rlimit(psutil.RLIMIT_NOFILE) == (123, 123)


@pytest.mark.integration
@pytest.mark.parametrize("target", [FuseTarget(name="fuse", type="fuse", threads=2),
                                    PassthroughTarget(name="pt", type="passthrough")], ids=["fuse", "passthrough"])
def test_builtin_server_mounts_reports_stats_and_unmounts(require_root, target, source: Path, tmp_path: Path) -> None:
    reason = target_unavailable_reason(target)
    if reason:
        pytest.skip(reason)
    with open_target(target, source, tmp_path / "work", nofile=256) as mounted:
        assert (mounted.path / "data").read_text() == "hello through fuse\n"
        assert mounted.stats_file == (tmp_path / "work" / f"{target.name}.stats.json").resolve()
        deadline = time.monotonic() + 5
        while (stats := mounted.read_stats()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats["pid"] == mounted.daemon_pid and stats["connection"] == mounted.connection
        assert psutil.Process(mounted.daemon_pid).rlimit(psutil.RLIMIT_NOFILE)[0] == 256
    assert_stopped(mounted)
