"""Helpers for the built-in FUSE server's tests: start a server process on a tmp dir, wait for
the mount, and always take it down (abort + detach if the daemon died); build raw requests
for the unit tests of its layers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import system
from bench.fusefs import protocol as p
from bench.fusefs.kernel import passthrough_unavailable_reason
from bench.fusefs.mounts import abort_connection, connection_id, is_mounted, unmount

REPO = Path(__file__).resolve().parent.parent

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"), reason="needs root and /dev/fuse"
)
needs_passthrough = pytest.mark.skipif(
    passthrough_unavailable_reason() is not None, reason=str(passthrough_unavailable_reason())
)

# Mode name used in test ids -> server arguments.
MODES: dict[str, list[str]] = {
    "plain": ["--mode", "plain"],
    "pt-keep": ["--mode", "passthrough", "--fd-policy", "keep"],
    "pt-close": ["--mode", "passthrough", "--fd-policy", "close"],
    "pt-cache": ["--mode", "passthrough", "--fd-policy", "cache", "--cache-size", "8"],
    # FUSE over io_uring: mount() turns the kernel's enable_uring on for these.
    "plain-uring": ["--mode", "plain", "--transport", "uring"],
    "pt-uring": ["--mode", "passthrough", "--fd-policy", "keep", "--transport", "uring"],
}


def mode_params() -> list[Any]:
    """pytest params over MODES, passthrough ones skipped where unsupported."""
    return [pytest.param(name, marks=[needs_passthrough] if "passthrough" in args else [], id=name)
            for name, args in MODES.items()]


def uring_args(args: tuple[str, ...]) -> bool:
    """Whether server arguments ask for FUSE over io_uring."""
    return any(a == "uring" and b == "--transport" for b, a in zip(args, args[1:]))


# Plain mode's other settings, for the tests that go through every mode (test id -> server arguments).
PLAIN_VARIANTS: dict[str, list[str]] = {
    "plain-writeback": ["--mode", "plain", "--writeback-cache"],
    "plain-direct-io": ["--mode", "plain", "--direct-io"],
    "plain-keep-cache": ["--mode", "plain", "--keep-cache", "--threads", "4"],
}
EVERY_MODE = {**MODES, **PLAIN_VARIANTS}
NO_SHARED_MMAP = {"plain-direct-io"}  # FOPEN_DIRECT_IO refuses a shared writable mmap


def every_mode_params(shared_mmap: bool = False) -> list[Any]:
    """pytest params over EVERY_MODE (only those that take a shared writable mmap with `shared_mmap`)."""
    return mode_params() + [name for name in PLAIN_VARIANTS if not (shared_mmap and name in NO_SHARED_MMAP)]


def request(opcode: int, body: bytes = b"", nodeid: int = 5, unique: int = 77, uid: int = 1000,
            gid: int = 100, pid: int = 4242) -> bytes:
    """A raw FUSE request as the kernel writes it: fuse_in_header, then `body`."""
    return p.IN_HEADER.pack(p.IN_HEADER_SIZE + len(body), opcode, unique, nodeid, uid, gid, pid, 0, 0) + body


def server_argv(source: Path, mountpoint: Path, *args: str) -> list[str]:
    """argv of a server process."""
    return [sys.executable, "-m", "bench.fusefs", str(source), str(mountpoint), *args]


@dataclass
class Mounted:
    """A running server: its mount, process and stats file."""

    source: Path
    path: Path
    proc: subprocess.Popen
    stats_file: Path

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        """The latest stats file."""
        return json.loads(self.stats_file.read_text())

    def wait_stats(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Poll the stats file until `predicate` holds; return the last stats either way."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats) or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def fds(self) -> int:
        """The daemon's open fds, counted from outside."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def take_down(mounted: Mounted) -> None:
    """Stop our server (by pid) and make sure no mount remains, whatever state it is in."""
    connection = connection_id(mounted.path)
    if mounted.proc.poll() is None:
        mounted.proc.send_signal(signal.SIGTERM)
        try:
            mounted.proc.wait(5)
        except subprocess.TimeoutExpired:
            mounted.proc.kill()
            mounted.proc.wait(5)
    if is_mounted(mounted.path):
        if connection is not None:
            abort_connection(connection)
        unmount(mounted.path, timeout=1.0)


@contextmanager
def mount(tmp: Path, *args: str, files: dict[str, bytes] | None = None,
          timeout: float = 10.0) -> Iterator[Mounted]:
    """Serve tmp/src at tmp/mnt with `args`; always unmounted and stopped on exit. With
    `--transport uring` the kernel's enable_uring is on for the mount's life, then as before."""
    with system.fuse_uring() if uring_args(args) else contextlib.nullcontext():
        with _mount(tmp, *args, files=files, timeout=timeout) as mounted:
            yield mounted


@contextmanager
def _mount(tmp: Path, *args: str, files: dict[str, bytes] | None, timeout: float) -> Iterator[Mounted]:
    source, path = tmp / "src", tmp / "mnt"
    source.mkdir(exist_ok=True)
    path.mkdir(exist_ok=True)
    for name, data in (files or {}).items():
        (source / name).write_bytes(data)
    stats_file = tmp / "stats.json"
    stats_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        server_argv(source, path, "--stats-file", str(stats_file), "--stats-interval", "0.05", *args),
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )
    mounted = Mounted(source, path, proc, stats_file)
    try:
        deadline = time.monotonic() + timeout
        while not stats_file.exists():
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("server did not come up")
            time.sleep(0.02)
        yield mounted
    finally:
        take_down(mounted)
        print(f"server stderr: {proc.stderr.read() if proc.stderr else ''}")  # shown on failure
        assert not is_mounted(path)
