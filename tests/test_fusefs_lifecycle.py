"""The built-in FUSE server's process contract: passthrough proof with fio, fd policies, no
leaks, signals, a killed daemon, and one-line refusals for bad arguments."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from fusefs_helpers import (
    MODES,
    REPO,
    mode_params,
    mount,
    needs_passthrough,
    needs_root,
    server_argv,
    uring_args,
)

from bench import system
from bench.fusefs.kernel import possible_cpus, uring_unavailable_reason
from bench.fusefs.mounts import is_mounted
from bench.fusefs.protocol import KERNEL_MINOR_MAX
from bench.system import drop_caches
from bench.transport import NOT_ON_RING

pytestmark = [pytest.mark.integration, needs_root]

FILES = 1000


def _fio(path: Path) -> dict:
    argv = ["fio", "--name=t", f"--filename={path}", "--rw=randrw", "--bs=4k", "--size=4M",
            "--direct=1", "--ioengine=psync", "--output-format=json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out[out.index("{"):])


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")
@pytest.mark.parametrize("mode", [p for p in mode_params()
                                  if p.id in ("plain", "pt-keep", "pt-close", "plain-uring", "pt-uring")])
def test_fio_requests_bypass_daemon_only_in_passthrough(tmp_path: Path, mode: str) -> None:
    with mount(tmp_path, *MODES[mode]) as fs:
        job = _fio(fs.path / "f")["jobs"][0]
        assert job["error"] == 0 and job["read"]["io_bytes"] > 0 and job["write"]["io_bytes"] > 0
        uring = uring_args(MODES[mode])
        stats = fs.wait_stats(lambda s: s["requests"].get("RELEASE", 0) > 0 and (not uring or _by_ring(s)))
        reads, writes = stats["requests"]["READ"], stats["requests"]["WRITE"]
        if uring:
            assert stats["transport"] == "uring" and stats["ring"]["queues"] == possible_cpus()
        else:
            assert stats["transport"] == "dev" and "ring" not in stats
        if "passthrough" not in MODES[mode]:
            assert reads > 0 and writes > 0 and stats["bytes"]["READ"] > 0
        else:
            assert (reads, writes) == (0, 0)
            assert stats["backing_opens_total"] > 0
            assert stats["requests"].get("GETXATTR", 0) <= 1  # ENOSYS once, then never asked again


def _by_ring(stats: dict) -> bool:
    """Every request but FORGET and INTERRUPT (the kernel sends those to /dev/fuse) went through
    the ring."""
    return ({op: n for op, n in stats["requests"].items() if n and op not in NOT_ON_RING}
            == {op: n for op, n in stats["ring"]["requests"].items() if n})


@pytest.fixture
def many_fds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@needs_passthrough
@pytest.mark.parametrize("policy", ["keep", "close", "cache"])
def test_fd_policy_and_no_leaks(tmp_path: Path, policy: str, many_fds: None) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(FILES):
        (source / f"f{i}").write_bytes(b"x")
    args = ["--mode", "passthrough", "--fd-policy", policy, "--cache-size", "100", "--nofile", "4096"]
    with mount(tmp_path, *args) as fs:
        for i in range(FILES):  # look every file up first: only the opens should move the count
            os.stat(fs.path / f"f{i}")
        baseline = fs.fds()
        fds = [os.open(fs.path / f"f{i}", os.O_RDONLY) for i in range(FILES)]
        try:
            stats = fs.wait_stats(lambda s: s["backing_ids"] >= FILES)
            assert stats["backing_ids"] == stats["backing_opens_total"] == FILES
            assert stats["backing_open_ns_total"] > 0 and stats["backing_closes_total"] == 0
            grown = fs.fds() - baseline
            if policy == "keep":
                assert grown >= FILES * 0.95
            else:
                assert grown <= FILES * 0.05
        finally:
            for fd in fds:
                os.close(fd)
        expected = 100 if policy == "cache" else 0
        stats = fs.wait_stats(lambda s: s["backing_ids"] == expected)
        assert stats["backing_ids"] == expected and stats["backing_ids_peak"] == FILES
        assert stats["backing_closes_total"] == FILES - expected and stats["backing_close_ns_total"] > 0
        drop_caches(level=2)  # FORGETs free every node, and with them cached backing ids
        stats = fs.wait_stats(lambda s: s["backing_ids"] == 0 and s["nodes"] == 1)
        assert (stats["backing_ids"], stats["nodes"], stats["backing_closes_total"]) == (0, 1, FILES)
        assert fs.fds() <= baseline


def test_plain_mode_frees_everything_after_forget(tmp_path: Path, many_fds: None) -> None:
    with mount(tmp_path, "--mode", "plain", files={f"f{i}": b"x" for i in range(200)}) as fs:
        baseline = fs.fds()
        fds = [os.open(fs.path / f"f{i}", os.O_RDONLY) for i in range(200)]
        assert fs.fds() - baseline >= 200
        for fd in fds:
            os.close(fd)
        with os.scandir(fs.path) as entries:  # READDIRPLUS hands out lookup references too
            assert sum(1 for e in entries if e.stat().st_size == 1) == 200
        drop_caches(level=2)
        stats = fs.wait_stats(lambda s: s["nodes"] == 1 and s["open_dirs"] == 0)
        assert (stats["nodes"], stats["open_dirs"]) == (1, 0) and fs.fds() <= baseline


def test_sigterm_unmounts_and_exits_zero(tmp_path: Path) -> None:
    with mount(tmp_path) as fs:
        fs.proc.send_signal(signal.SIGTERM)
        assert fs.proc.wait(10) == 0
        assert not is_mounted(fs.path)
        assert "Traceback" not in fs.proc.stderr.read()
        assert fs.stats()["mounted"] is False


def test_external_unmount_ends_server(tmp_path: Path) -> None:
    with mount(tmp_path) as fs:
        subprocess.run(["umount", str(fs.path)], check=True)
        assert fs.proc.wait(10) == 0
        assert "Traceback" not in fs.proc.stderr.read()


@pytest.mark.parametrize("mode", [p for p in mode_params() if p.id in ("plain", "pt-keep", "plain-uring", "pt-uring")])
def test_sigkill_leaves_a_mount_that_the_leftovers_clean_up_clears(tmp_path: Path, mode: str) -> None:
    before = system.uring_parameter()
    with mount(tmp_path, *MODES[mode], files={"f": b"data"}) as fs:
        held = open(fs.path / "f", "rb")
        fs.proc.kill()
        fs.proc.wait(10)
        assert is_mounted(fs.path)  # the kernel keeps a dead daemon's mount: cleanup must abort it
    with contextlib.suppress(OSError):  # ENOTCONN: the connection was aborted under it
        held.close()
    assert not is_mounted(fs.path)
    assert system.uring_parameter() == before


@pytest.mark.parametrize("mode", [p for p in mode_params() if p.id in ("plain-uring", "pt-uring")])
def test_uring_unmount_ends_every_queue(tmp_path: Path, mode: str) -> None:
    with mount(tmp_path, *MODES[mode], files={"f": b"data"}) as fs:
        assert (fs.path / "f").read_bytes() == b"data"
        threads = len(os.listdir(f"/proc/{fs.pid}/task"))
        assert threads >= possible_cpus() + 2  # main, one /dev/fuse worker, one per queue
        subprocess.run(["umount", str(fs.path)], check=True)
        assert fs.proc.wait(10) == 0
        assert "Traceback" not in fs.proc.stderr.read()


def test_uring_refused_while_the_kernel_does_not_offer_it(tmp_path: Path) -> None:
    """enable_uring N: the kernel does not offer OVER_IO_URING in INIT, and the server says so
    instead of serving over /dev/fuse."""
    (tmp_path / "src").mkdir()
    (tmp_path / "mnt").mkdir()
    before = system.uring_parameter()
    assert before is not None, uring_unavailable_reason()
    system.ENABLE_URING.write_text("N\n")
    try:
        proc = _run_cli(*server_argv(tmp_path / "src", tmp_path / "mnt", "--transport", "uring"))
    finally:
        system.ENABLE_URING.write_text(f"{before}\n")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "transport uring refused" in line and "did not offer OVER_IO_URING" in line and "enable_uring" in line
    assert not is_mounted(tmp_path / "mnt")


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=30)


def test_refusals_exit_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "mnt").mkdir()
    (tmp_path / "file").write_text("")
    cases = {
        "writeback": server_argv(tmp_path / "src", tmp_path / "mnt", "--mode", "passthrough", "--writeback-cache"),
        "missing source": server_argv(tmp_path / "nope", tmp_path / "mnt"),
        "mountpoint not a dir": server_argv(tmp_path / "src", tmp_path / "file"),
        "relative": server_argv(Path("src"), tmp_path / "mnt"),
        "bad option": server_argv(tmp_path / "src", tmp_path / "mnt", "--threads", "0"),
    }
    for case, argv in cases.items():
        proc = _run_cli(*argv)
        assert proc.returncode == 2, case
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (case, proc.stderr)
        assert not is_mounted(tmp_path / "mnt")
    assert "writeback" in _run_cli(*cases["writeback"]).stderr


def test_cli_main_in_process_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.fusefs.cli import main

    assert main([str(tmp_path / "missing"), str(tmp_path)]) == 2
    assert "source is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("mode", [param for param in mode_params() if param.id in ("plain", "pt-keep", "pt-uring")])
def test_stats_file_format(tmp_path: Path, mode: str) -> None:
    passthrough = "passthrough" in MODES[mode]
    uring = uring_args(MODES[mode])
    with mount(tmp_path, *MODES[mode], "--max-pages", "64", files={"f": b"abc"}) as fs:
        assert (fs.path / "f").read_bytes() == b"abc"
        stats = fs.wait_stats(lambda s: s["requests"].get("RELEASE", 0) > 0)
        for key in ("pid", "mode", "fd_policy", "xattr", "transport", "options", "connection", "mounted", "init", "time",
                    "requests", "bytes", "errors", "errors_total", "backing_ids",
                    "backing_ids_peak", "backing_opens_total", "backing_closes_total", "backing_open_ns_total",
                    "backing_close_ns_total", "daemon_fds"):
            assert key in stats, key
        assert stats["pid"] == fs.pid and stats["mounted"] is True and stats["mode"] == MODES[mode][1]
        assert stats["connection"] == os.minor(os.stat(fs.path).st_dev)
        assert stats["bytes"]["READ"] == (0 if passthrough else 3)  # passthrough reads bypass the daemon
        init = stats["init"]
        kernel_minor = int(init["kernel_protocol"].removeprefix("7."))
        assert init["protocol"] == f"7.{min(kernel_minor, KERNEL_MINOR_MAX)}"
        asked = ({"ASYNC_READ", "BIG_WRITES", "MAX_PAGES", "INIT_EXT"} | ({"PASSTHROUGH"} if passthrough else set())
                 | ({"OVER_IO_URING"} if uring else set()))
        assert asked <= set(init["flags"]) <= set(init["kernel_flags"])
        assert init["flags"] == sorted(init["flags"]) and ("PASSTHROUGH" in init["flags"]) == passthrough
        assert ("OVER_IO_URING" in init["flags"]) == uring and stats["transport"] == ("uring" if uring else "dev")
        if uring:
            assert stats["ring"]["depth"] == 32 and stats["ring"]["requests"]["OPEN"] == 1
        assert (init["max_pages"], init["max_write"], init["max_background"]) == (64, 64 * 4096, 64)


@needs_passthrough
def test_passthrough_refused_on_stacked_source(tmp_path: Path) -> None:
    with mount(tmp_path, "--mode", "passthrough", files={"f": b"x"}) as fs:
        upper = tmp_path / "upper"
        upper.mkdir()
        proc = _run_cli(*server_argv(fs.path, upper, "--mode", "passthrough"))
        assert proc.returncode == 2
        assert "passthrough refused" in proc.stderr and "ELOOP" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not is_mounted(upper)


@needs_passthrough
@pytest.mark.parametrize("policy", ["keep", "close"])
def test_nofile_limits_keep_but_not_close(tmp_path: Path, policy: str, many_fds: None) -> None:
    args = ["--mode", "passthrough", "--fd-policy", policy, "--nofile", "256"]
    with mount(tmp_path, *args, files={f"f{i}": b"x" for i in range(400)}) as fs:
        limits = Path(f"/proc/{fs.pid}/limits").read_text()
        assert any(line.startswith("Max open files") and line.split()[3:5] == ["256", "256"]
                   for line in limits.splitlines())
        fds, failures = [], 0
        try:
            for i in range(400):
                try:
                    fds.append(os.open(fs.path / f"f{i}", os.O_RDONLY))
                except OSError as exc:
                    assert exc.errno == errno.EMFILE
                    failures += 1
        finally:
            for fd in fds:
                os.close(fd)
        if policy == "keep":
            assert failures > 100  # the daemon's own fd per open file hits its limit
        else:
            assert failures == 0  # the kernel holds the backing files, outside the daemon's limit
