"""`fusebench doctor`: its verdicts on a fake host (unit), and every check for real (integration)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fake_host import FakeHost

from bench.doctor import CHECKS, MISSING, OK, WARN, run_doctor
from bench.fusefs import mounts
from bench.host import Host
from bench.system import BackingViews
from bench.targets import TargetError

NAMES = (
    "fio",
    "/dev/fuse",
    "privileges",
    "kernel",
    "CONFIG_FUSE_PASSTHROUGH",
    "passthrough works",
    "io_uring transport works",
    "kernel views of backing files",
    "RLIMIT_NOFILE",
    "drop_caches",
    "bindfs",
    "catalog programs",
    "request tracepoint",
)


FUSECTL = ("abort", "congestion_threshold", "max_background", "waiting")  # Linux 6.18
DEVICE_FDINFO = ("pos", "flags", "mnt_id", "ino", "fuse_connection")
FILE_FDINFO = ("pos", "flags", "mnt_id", "ino")


class Machine(FakeHost):
    """A machine described by its facts; by default one where everything works."""

    def __init__(self, **facts) -> None:
        super().__init__()
        self.facts = dict(root=True, cap=True, fio="/usr/bin/fio", fio_version="fio-3.33", dev_fuse=True,
                          kernel=(6, 18), config="y", uring="N", uring_refused=None, ring_served=4, nofile=(1024, 1048576), bindfs="/usr/bin/bindfs",
                          missing_commands=(), tracing=None, unavailable=None, reads_seen=0,
                          fusectl=FUSECTL + ("backing_files",), daemon_fdinfo=DEVICE_FDINFO, file_fdinfo=FILE_FDINFO)
        self.facts.update(facts)
        self.enable_uring, self.uring_refused = self.facts["uring"], self.facts["uring_refused"]

    def is_root(self) -> bool:
        return self.facts["root"]

    def has_cap_sys_admin(self) -> bool:
        return self.facts["cap"]

    def which(self, command: str) -> str | None:
        if command in ("fio", "bindfs"):
            return self.facts[command]
        return None if command in self.facts["missing_commands"] else f"/usr/bin/{command}"

    def fio_version(self) -> str | None:
        return self.facts["fio_version"]

    def is_char_device(self, path: str) -> bool:
        return self.facts["dev_fuse"]

    def kernel_version(self) -> tuple[int, int]:
        return self.facts["kernel"]

    def kernel_config(self, option: str) -> str | None:
        return self.facts["config"]

    def nofile_limits(self) -> tuple[int, int]:
        return self.facts["nofile"]

    def writable(self, path: Path) -> bool:
        return True

    def tracing_unavailable_reason(self) -> str | None:
        return self.facts["tracing"]

    def target_unavailable_reason(self, target) -> str | None:
        return self.facts["unavailable"]

    def probe_target(self, target, size: int) -> tuple[int, dict | None]:
        # What the built-in server's stats say after the probe file went through the mount.
        if target.transport == "uring":
            if "enable_uring Y" not in self.events:
                raise TargetError("transport uring refused: the kernel (FUSE 7.45) did not offer OVER_IO_URING")
            return size, {"transport": "uring", "ring": {"requests": {"READ": self.facts["ring_served"]}}}
        return size, {"requests": {"OPEN": 1, "READ": self.facts["reads_seen"]}}


    def probe_backing_views(self, target) -> BackingViews:
        # What a kernel shows of the connection while the probe file is open through it.
        return BackingViews(connection=42, fusectl=self.facts["fusectl"], daemon_fdinfo=self.facts["daemon_fdinfo"],
                            file_fdinfo=self.facts["file_fdinfo"])


def verdicts(host: Machine) -> dict[str, str]:
    return {check.name: check.status for check in (check_fn(host) for check_fn in CHECKS)}


def test_a_machine_with_everything_passes() -> None:
    host = Machine()
    assert set(verdicts(host).values()) == {OK}
    assert run_doctor(host) == 0
    assert host.said[-1] == "everything the default scenario needs is here"
    assert any("passthrough works" in line and "1 OPEN and 0 READ" in line for line in host.said)


@pytest.mark.parametrize(("facts", "name", "status", "fix"), [
    ({"fio": None}, "fio", MISSING, "apt-get install fio"),
    ({"fio_version": None}, "fio", MISSING, "reinstall fio"),
    ({"dev_fuse": False}, "/dev/fuse", MISSING, "modprobe fuse"),
    ({"root": False, "cap": False}, "privileges", MISSING, "run as root"),
    ({"cap": False}, "privileges", MISSING, "run as root"),  # uid 0 without capabilities
    ({"kernel": (6, 8)}, "kernel", MISSING, "6.9 or newer"),
    ({"config": "n"}, "CONFIG_FUSE_PASSTHROUGH", MISSING, "CONFIG_FUSE_PASSTHROUGH=y"),
    ({"config": None}, "CONFIG_FUSE_PASSTHROUGH", WARN, "live passthrough check"),
    ({"unavailable": "FUSE targets need root"}, "passthrough works", MISSING, "resolve that reason"),
    ({"reads_seen": 3}, "passthrough works", MISSING, "did not engage passthrough"),
    ({"uring": None}, "io_uring transport works", WARN, "only targets with `transport: uring`"),
    ({"uring_refused": "writing Y: Permission denied (needs root)"}, "io_uring transport works", WARN,
     "fail here with that reason"),
    ({"ring_served": 0}, "io_uring transport works", WARN, "see the server log"),
    ({"fusectl": FUSECTL}, "kernel views of backing files", WARN, "informational"),
    ({"nofile": (1024, 4096)}, "RLIMIT_NOFILE", WARN, "ulimit -Hn 65536"),
    ({"root": False}, "drop_caches", MISSING, "run as root"),
    ({"bindfs": None}, "bindfs", WARN, "apt-get install bindfs"),
    ({"missing_commands": ("gcc", "git")}, "catalog programs", WARN, "apt-get install gcc git"),
    ({"tracing": "needs root"}, "request tracepoint", WARN, "CAP_BPF"),
])
def test_each_problem_gets_its_verdict_and_fix(facts: dict, name: str, status: str, fix: str) -> None:
    host = Machine(**facts)
    check = next(c for c in (check_fn(host) for check_fn in CHECKS) if c.name == name)
    assert check.status == status and fix in check.fix
    assert run_doctor(Machine(**facts)) == (2 if status == MISSING else 0)


def test_the_uring_check_turns_the_parameter_on_around_its_mount_and_says_why_not() -> None:
    host = Machine()
    check = next(c for c in (check_fn(host) for check_fn in CHECKS) if c.name == "io_uring transport works")
    assert (check.status, check.detail) == (OK, "read 1 MiB, the server's ring answered 4 requests")
    assert host.events == ["enable_uring Y", "enable_uring N"]
    missing = next(check_fn(Machine(uring=None)) for check_fn in CHECKS if check_fn.__name__ == "check_uring")
    assert "needs Linux 6.14 or newer built with CONFIG_FUSE_IO_URING" in missing.detail
    refused = next(check_fn(Machine(uring_refused="cannot turn FUSE over io_uring on: writing Y to "
                                                  "enable_uring: Permission denied (switching it needs root)"))
                   for check_fn in CHECKS if check_fn.__name__ == "check_uring")
    assert refused.status == WARN and refused.detail.startswith("refused: cannot turn") and "needs root" in refused.detail
    unchecked = next(check_fn(Machine(unavailable="FUSE targets need root")) for check_fn in CHECKS
                     if check_fn.__name__ == "check_uring")
    assert (unchecked.status, unchecked.detail) == (WARN, "not checked: FUSE targets need root")


def test_the_report_has_one_line_per_check_and_a_fix_under_what_is_missing() -> None:
    host = Machine(fio=None, bindfs=None)
    assert run_doctor(host) == 2
    statuses = [line.split(None, 1)[0] for line in host.said if not line.startswith(" ")]
    assert statuses[:-1] == [MISSING, OK, OK, OK, OK, OK, OK, OK, OK, OK, WARN, OK, OK]
    assert host.said[1].strip() == "fix: apt-get install fio (or `make setup`)"
    assert host.said[-1] == "1 thing(s) the default scenario needs are missing (exit 2)"


def backing_check(**facts):
    return next(check_fn(Machine(**facts)) for check_fn in CHECKS if check_fn.__name__ == "check_backing_views")


def test_the_backing_views_check_says_which_views_the_kernel_has() -> None:
    none = backing_check(fusectl=FUSECTL)
    assert (none.status, none.detail) == (WARN, "none on this kernel: fusectl has abort, congestion_threshold, "
                                                "max_background, waiting (no backing_files); fdinfo has no backing fields")
    fusectl = backing_check()
    assert (fusectl.status, fusectl.fix) == (OK, "")
    assert fusectl.detail == ("fusectl has abort, congestion_threshold, max_background, waiting, backing_files "
                              "(backing_files)")
    fdinfo = backing_check(fusectl=FUSECTL, daemon_fdinfo=DEVICE_FDINFO + ("backing_files",),
                           file_fdinfo=FILE_FDINFO + ("backing_id",))
    assert fdinfo.status == OK
    assert fdinfo.detail.endswith("(no backing_files); /dev/fuse fdinfo has backing_files; "
                                  "the open file's fdinfo has backing_id")
    unchecked = backing_check(unavailable="FUSE targets need root")
    assert (unchecked.status, unchecked.detail) == (WARN, "not checked: FUSE targets need root")
    other = backing_check(fusectl=FUSECTL, file_fdinfo=FILE_FDINFO + ("lock",))
    assert other.status == WARN and other.detail.endswith("no backing fields (other fields: file lock)")


@pytest.mark.integration
def test_every_real_check_gives_a_status_and_a_fix_when_missing() -> None:
    lines: list[str] = []

    class Here(Host):
        def output(self, text: str) -> None:
            lines.append(text)

    status = run_doctor(Here())
    missing = [line for line in lines if line.startswith(MISSING)]
    assert status == (2 if missing else 0)
    for name in NAMES:
        assert any(line.split(None, 1)[0] in (OK, MISSING, WARN) and name in line for line in lines), name
    for line, following in zip(lines, lines[1:] + [""]):
        if line.startswith(MISSING):
            assert following.strip().startswith("fix: "), line


@pytest.mark.integration
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
