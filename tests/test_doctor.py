"""`fusebench doctor` runs every check for real and says ok / missing / warn for each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.fusefs import mounts
from bench.doctor import CHECKS, MISSING, OK, WARN, run_doctor

# The live passthrough check mounts the built-in server (as root; without root it says why not).
pytestmark = pytest.mark.integration

NAMES = (
    "fio",
    "/dev/fuse",
    "privileges",
    "kernel",
    "CONFIG_FUSE_PASSTHROUGH",
    "passthrough works",
    "fuse enable_uring",
    "RLIMIT_NOFILE",
    "drop_caches",
    "bindfs",
    "request tracepoint",
)


def test_every_check_gives_a_status_and_a_fix_when_missing() -> None:
    for check_fn in CHECKS:
        check = check_fn()
        assert check.status in (OK, MISSING, WARN)
        assert check.detail
        if check.status == MISSING:
            assert check.fix, f"{check.name} is missing but says no fix"


def test_exit_status_follows_missing_checks() -> None:
    lines: list[str] = []
    status = run_doctor(lines.append)
    missing = [line for line in lines if line.startswith(MISSING)]
    assert status == (2 if missing else 0)
    for name in NAMES:
        assert any(line.split(None, 1)[0] in (OK, MISSING, WARN) and name in line for line in lines), name


def test_doctor_command_leaves_no_mount(tmp_path: Path) -> None:
    before = {m.mountpoint for m in mounts.mounts() if m.is_fuse}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "doctor"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines()[0].startswith(("ok ", "missing ", "warn "))
    leftovers = {m.mountpoint for m in mounts.mounts() if m.is_fuse and "fusebench-doctor" in m.mountpoint}
    assert not leftovers - before
