"""bench.system: the huge-page reservation for `buffers: hugepages` (root: it writes vm.nr_hugepages),
and FUSE over io_uring turned on for a run and back (on a file standing for the parameter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import leftovers, system


@pytest.mark.integration
def test_hugepages_are_added_for_the_body_and_given_back(require_root) -> None:
    before = int(system.NR_HUGEPAGES.read_text())
    wanted = system.free_hugepages() + 3
    with system.hugepages(wanted):
        assert system.free_hugepages() >= wanted
        assert int(system.NR_HUGEPAGES.read_text()) == before + 3
    assert int(system.NR_HUGEPAGES.read_text()) == before


@pytest.mark.integration
def test_pages_already_free_change_nothing(require_root) -> None:
    before = int(system.NR_HUGEPAGES.read_text())
    with system.hugepages(0):
        assert int(system.NR_HUGEPAGES.read_text()) == before


@pytest.mark.integration
def test_more_than_memory_holds_is_a_clear_error_and_changes_nothing(require_root) -> None:
    before = int(system.NR_HUGEPAGES.read_text())
    with pytest.raises(system.HugePagesError, match=r"needs 10000000 free 2 MiB huge pages; the kernel found only \d+"):
        with system.hugepages(10_000_000):  # 20 TB
            pass
    assert int(system.NR_HUGEPAGES.read_text()) == before


# -- enable_uring, on a temporary file standing for /sys/module/fuse/parameters/enable_uring (no root)

@pytest.fixture
def parameter(tmp_path: Path) -> Path:
    path = tmp_path / "enable_uring"
    path.write_text("N\n")
    return path


def test_uring_is_turned_on_for_the_body_and_back_after(parameter: Path) -> None:
    with system.fuse_uring(parameter) as before:
        assert before == "N" and system.uring_parameter(parameter) == "Y"
        assert [entry["settings"] for entry in leftovers.entries()] == [{str(parameter): "N"}]
    assert parameter.read_text() == "N\n"
    assert leftovers.entries() == []


def test_uring_is_turned_back_when_the_body_fails(parameter: Path) -> None:
    with pytest.raises(RuntimeError), system.fuse_uring(parameter):
        raise RuntimeError("a run failed")
    assert system.uring_parameter(parameter) == "N" and leftovers.entries() == []


def test_uring_already_on_is_left_on(parameter: Path) -> None:
    parameter.write_text("Y\n")
    with system.fuse_uring(parameter) as before:
        assert before == "Y" and system.uring_parameter(parameter) == "Y"
    assert parameter.read_text() == "Y\n" and leftovers.entries() == []


def test_two_holders_share_the_parameter_and_the_last_one_out_turns_it_back(parameter: Path) -> None:
    """A second run (or doctor) started while the first holds it on: the first to finish must
    not turn it off under the other, and the original N is what comes back at the end."""
    first = system.fuse_uring(parameter)
    assert first.__enter__() == "N"
    with system.fuse_uring(parameter) as second:
        assert second == "N"  # the value before any of them, not the Y the first one wrote
        first.__exit__(None, None, None)
        assert system.uring_parameter(parameter) == "Y"  # still held by the second
    assert parameter.read_text() == "N\n" and leftovers.entries() == []


def test_the_clean_up_leaves_a_setting_a_live_run_still_holds(parameter: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(parameter)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "on"
        with system.fuse_uring(parameter) as before:
            holder.kill()
            holder.wait()
            assert before == "N"
            assert leftovers.clear_leftovers() == [
                f"left {parameter} as it is (enable_uring) from pid {holder.pid}: a running fusebench holds it"]
            assert system.uring_parameter(parameter) == "Y"
    finally:
        holder.kill()
        holder.wait()
    assert parameter.read_text() == "N\n" and leftovers.entries() == []


def test_a_kernel_without_the_parameter_reports_unavailable_cleanly(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-parameter"
    assert system.uring_parameter(missing) is None
    with pytest.raises(system.UringUnavailable, match="needs Linux 6.14 or newer built with CONFIG_FUSE_IO_URING") as info:
        with system.fuse_uring(missing):
            pytest.fail("the body must not run")
    assert info.value.exit_code == 2 and not missing.exists() and leftovers.entries() == []


def test_a_parameter_that_cannot_be_written_says_root_is_needed(parameter: Path, monkeypatch) -> None:
    write = Path.write_text

    def refused(self: Path, text: str, *args, **kwargs) -> int:
        if self == parameter:
            raise PermissionError(13, "Permission denied")
        return write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refused)
    with pytest.raises(system.UringUnavailable, match="Permission denied.*needs root"):
        with system.fuse_uring(parameter):
            pytest.fail("the body must not run")
    assert parameter.read_text() == "N\n" and leftovers.entries() == []


def test_uring_of_a_sigkilled_run_is_turned_back_by_the_leftovers_clean_up(parameter: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(parameter)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "on"
        assert parameter.read_text() == "Y\n"
    finally:
        holder.kill()
        holder.wait()
    assert parameter.read_text() == "Y\n"  # nobody put it back yet

    messages = leftovers.clear_leftovers()

    assert messages == [f"restored {parameter} to N (enable_uring) from pid {holder.pid}"]
    assert parameter.read_text() == "N\n" and leftovers.entries() == []


# Turns the parameter on, says so, and waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from bench import system
with system.fuse_uring(Path(sys.argv[1])):
    print("on", flush=True)
    time.sleep(600)
"""


def test_fdinfo_fields_of_an_open_file(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as handle:
        fields = system.fdinfo("self", handle.fileno())
        assert {"pos", "flags", "mnt_id"} <= set(fields) <= system.USUAL_FDINFO | {"lock"}
        assert fields["pos"] == "0"
    assert system.fuse_device_fds(os.getpid()) == []
