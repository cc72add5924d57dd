"""Shared fixtures: root/tool requirements, a real bindfs mount, and a guard against leftover mounts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import leftovers
from bench.fusefs import mounts
from bench.scenario import ExternalTarget
from bench.targets import MountedTarget, open_target


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI every test must run: a skip there means a missing install step, so it fails."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


@pytest.fixture(autouse=True)
def _sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the leftovers registry per test, and fail a test that leaves a FUSE mount under tmp_path."""
    monkeypatch.setenv(leftovers.STATE_ENV, str(tmp_path / "fusebench-state.json"))
    yield
    base = str(tmp_path.resolve()) + os.sep
    left = [m.mountpoint for m in mounts.mounts() if m.is_fuse and m.mountpoint.startswith(base)]
    for mountpoint in reversed(left):
        mounts.unmount(mountpoint, timeout=2.0)
    if left:
        pytest.fail(f"test left FUSE mounts behind (now detached): {left}")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A source directory with one small file, `data`, for a target to mirror."""
    path = tmp_path / "source"
    path.mkdir()
    (path / "data").write_text("hello through fuse\n")
    return path


@pytest.fixture
def require_root() -> None:
    """Skip unless running as root with /dev/fuse (what real mounts need)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse")


@pytest.fixture
def require_fio() -> None:
    """Skip unless fio is installed."""
    if shutil.which("fio") is None:
        pytest.skip("needs fio")


@pytest.fixture
def bindfs_mount(require_root: None, tmp_path: Path) -> Iterator[MountedTarget]:
    """A foreground bindfs mount of tmp_path/source at tmp_path/work/mnt-bindfs, unmounted at teardown."""
    if shutil.which("bindfs") is None:
        pytest.skip("needs bindfs")
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    target = ExternalTarget(name="bindfs", type="external", command=["bindfs", "-f", "{source}", "{mountpoint}"])
    with open_target(target, source, tmp_path / "work") as mounted:
        yield mounted
