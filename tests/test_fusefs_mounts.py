"""bench.fusefs.mounts: the mount table, unmounting (busy, hung) and aborting a connection."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.fusefs import mounts
from bench.scenario import ExternalTarget
from bench.targets import open_target

REPO = Path(__file__).resolve().parents[1]
FOREGROUND = ["bindfs", "-f", "{source}", "{mountpoint}"]


def python(script: str, *args: str, **popen_options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, **popen_options)


def test_parse_mountinfo_decodes_octal_escapes() -> None:
    line = (b"43 27 0:40 / /tmp/a\\040b\\011c\\134d rw,relatime shared:1 master:2 - fuse.bindfs "
            b"/src\\040dir rw,user_id=0\n"
            b"44 27 0:41 / /sys/fs/fuse/connections rw - fusectl fusectl rw\n")
    fuse, ctl = mounts.parse_mountinfo(line)
    assert fuse.mountpoint == "/tmp/a b\tc\\d" and fuse.source == "/src dir"
    assert fuse.fstype == "fuse.bindfs" and (fuse.major, fuse.minor) == (0, 40) and fuse.is_fuse
    assert ctl.fstype == "fusectl" and not ctl.is_fuse


@pytest.mark.integration
def test_mount_table_handles_escaped_paths(require_root, source: Path, tmp_path: Path) -> None:
    target = ExternalTarget(name="spaced", type="external", command=FOREGROUND)
    with open_target(target, source, tmp_path / "work dir\\with escapes") as mounted:
        assert " " in str(mounted.mountpoint) and mounts.is_mounted(mounted.mountpoint)
        assert mounts.connection_id(mounted.mountpoint) == os.minor(os.stat(mounted.mountpoint).st_dev)
    assert not mounts.is_mounted(mounted.mountpoint)


@pytest.mark.integration
def test_busy_mount_is_detached_after_the_timeout(bindfs_mount) -> None:
    (bindfs_mount.path / "f").write_text("x")
    with open(bindfs_mount.path / "f") as held:
        started = time.monotonic()
        mounts.unmount(bindfs_mount.mountpoint, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 5
        assert not mounts.is_mounted(bindfs_mount.mountpoint)
        assert held.read() == "x"  # a lazily detached mount still serves open files


@pytest.mark.integration
def test_abort_connection_releases_a_client_of_a_hung_daemon(bindfs_mount) -> None:
    (bindfs_mount.path / "f").write_text("x")
    daemon = psutil.Process(bindfs_mount.daemon_pid)
    fusectl_was_mounted = mounts.is_mounted(mounts.FUSECTL_DIR)
    daemon.suspend()
    try:
        client = python("import os, sys; os.listdir(sys.argv[1])", str(bindfs_mount.path / "sub"),
                        stderr=subprocess.DEVNULL)
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(0.5)  # blocked on the hung daemon
        assert mounts.abort_connection(bindfs_mount.connection)
        assert client.wait(5) != 0
    finally:
        daemon.resume()
    assert mounts.is_mounted(mounts.FUSECTL_DIR) == fusectl_was_mounted
    assert mounts.abort_connection(999_999) is False


def test_backing_files_listed_counts_the_lines_of_fusectls_backing_files(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mounts, "_fusectl", contextlib.contextmanager(lambda: iter([tmp_path])))
    monkeypatch.setattr(mounts.os, "geteuid", lambda: 0)
    (tmp_path / "42").mkdir()
    assert mounts.backing_files_listed(42) is None  # a kernel without the file (6.18)
    assert mounts.backing_files_listed(7) is None  # a connection that is gone
    (tmp_path / "42" / "backing_files").write_text("")
    assert mounts.backing_files_listed(42) == 0
    (tmp_path / "42" / "backing_files").write_text("1: /srv/data/f000001\n2: /srv/data/f000002\n")
    assert mounts.backing_files_listed(42) == 2
    monkeypatch.setattr(mounts.os, "geteuid", lambda: 1000)
    assert mounts.backing_files_listed(42) is None  # fusectl needs root
