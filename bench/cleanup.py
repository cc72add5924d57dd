"""Find and clear what a run leaves behind: FUSE mounts and the server processes behind them.

Every mount and started process is recorded in a state file (JSON, replaced atomically,
guarded by flock) together with the run that made it (pid + create_time). An entry whose
run is gone was left by a crash; `clear_leftovers()` aborts, unmounts and ends it. A pid is
only signalled when its create_time still matches, so a reused pid is never killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import psutil

from bench.errors import BenchError

STATE_ENV = "FUSEBENCH_STATE"
FUSECTL_DIR = Path("/sys/fs/fuse/connections")
MNT_DETACH = 2
# psutil derives create_time from clock ticks: two distinct processes differ by >= 10 ms.
_CREATE_TIME_TOLERANCE_S = 0.001

_libc = ctypes.CDLL(None, use_errno=True)


class CleanupError(BenchError):
    """A mount could not be removed even lazily."""


# ---------------------------------------------------------------- mount table


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mountpoint: str
    fstype: str
    source: str
    major: int
    minor: int

    @property
    def is_fuse(self) -> bool:
        """True for fuse, fuse.NAME and fuseblk mounts (not fusectl)."""
        return self.fstype in ("fuse", "fuseblk") or self.fstype.startswith("fuse.")

    @property
    def connection(self) -> int | None:
        """The FUSE connection number (the kernel's dev_t, as fusectl names it), None if not FUSE."""
        return (self.major << 20) | self.minor if self.is_fuse else None


def _unescape(field: bytes) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)
    return os.fsdecode(raw)


def parse_mountinfo(data: bytes) -> list[MountEntry]:
    """Parse the text of /proc/PID/mountinfo."""
    entries = []
    for line in data.splitlines():
        fields = line.split(b" ")
        if b"-" not in fields:
            continue
        sep = fields.index(b"-", 6)
        major, minor = fields[2].split(b":")
        entries.append(
            MountEntry(
                mountpoint=_unescape(fields[4]),
                fstype=_unescape(fields[sep + 1]),
                source=_unescape(fields[sep + 2]),
                major=int(major),
                minor=int(minor),
            )
        )
    return entries


def mounts() -> list[MountEntry]:
    """The mounts visible to this process, in mount order."""
    return parse_mountinfo(Path("/proc/self/mountinfo").read_bytes())


def _canonical(path: str | os.PathLike) -> str:
    # Resolve only the parent: stat()ing the mountpoint itself asks the FUSE daemon, which may hang.
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


def mount_entry(path: str | os.PathLike) -> MountEntry | None:
    """The topmost mount at `path`, or None when nothing is mounted there."""
    target = _canonical(path)
    found = [entry for entry in mounts() if entry.mountpoint == target]
    return found[-1] if found else None


def is_mounted(path: str | os.PathLike) -> bool:
    """True when something is mounted at `path` (read from mountinfo, no request to the mount)."""
    return mount_entry(path) is not None


def connection_id(mountpoint: str | os.PathLike) -> int | None:
    """The FUSE connection number of the mount at `mountpoint`, or None.

    Taken from mountinfo rather than os.stat(), which would send a request to a possibly hung daemon.
    """
    entry = mount_entry(mountpoint)
    return entry.connection if entry else None


def connection_holders(connection: int) -> list[int]:
    """Pids holding a /dev/fuse fd of `connection` (fdinfo `fuse_connection: N`, Linux 6.16+)."""
    holders = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in os.listdir(pid_dir / "fd"):
                if os.readlink(pid_dir / "fd" / fd) != "/dev/fuse":
                    continue
                info = (pid_dir / "fdinfo" / fd).read_text()
                if any(line.split() == ["fuse_connection:", str(connection)] for line in info.splitlines()):
                    holders.append(int(pid_dir.name))
                    break
        except OSError:
            continue  # the process exited or is not ours to read
    return sorted(holders)


# ---------------------------------------------------------------- unmount and abort


def _umount2(path: str, flags: int) -> int:
    """umount2(2); 0 or the errno."""
    if _libc.umount2(os.fsencode(path), flags) == 0:
        return 0
    return ctypes.get_errno()


def _umount2_within(path: str, flags: int, timeout: float) -> int | None:
    """umount2 in a helper thread; None when it is still blocked after `timeout` (a hung daemon)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(_umount2(path, flags)), daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else None


@contextlib.contextmanager
def _fusectl() -> Iterator[Path]:
    """/sys/fs/fuse/connections with fusectl mounted; unmounted again if we mounted it."""
    with _file_lock(state_path().with_name("fusectl.lock")):
        mounted_here = False
        if not is_mounted(FUSECTL_DIR):
            if _libc.mount(b"fusectl", os.fsencode(FUSECTL_DIR), b"fusectl", 0, None) != 0:
                err = ctypes.get_errno()
                raise CleanupError(f"cannot mount fusectl on {FUSECTL_DIR}: {os.strerror(err)}")
            mounted_here = True
        try:
            yield FUSECTL_DIR
        finally:
            if mounted_here:
                _umount2(str(FUSECTL_DIR), MNT_DETACH)


def abort_connection(connection: int) -> bool:
    """Abort a FUSE connection: every waiting request fails and the daemon is cut off.

    Returns False when the connection no longer exists.
    """
    with _fusectl() as fusectl:
        try:
            (fusectl / str(connection) / "abort").write_text("1")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CleanupError(f"cannot abort FUSE connection {connection}: {exc.strerror}") from None
    return True


def unmount(path: str | os.PathLike, timeout: float = 5.0, *, connection: int | None = None) -> None:
    """Unmount `path`: retry while busy until `timeout`, then detach lazily.

    If umount2 blocks (the daemon does not answer), the FUSE connection is aborted first.
    Raises CleanupError when even the lazy detach fails.
    """
    target = _canonical(path)
    if not is_mounted(target):
        return
    if connection is None:
        connection = connection_id(target)
    deadline = time.monotonic() + timeout
    while True:
        err = _umount2_within(target, 0, max(deadline - time.monotonic(), 0.5))
        if err == 0 or not is_mounted(target):
            return
        if err is None:
            if connection is not None:
                abort_connection(connection)
            break
        if err != errno.EBUSY or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    err = _umount2_within(target, MNT_DETACH, timeout)
    if is_mounted(target):
        reason = "umount2 blocked" if err is None else os.strerror(err)
        raise CleanupError(f"cannot unmount {target}: {reason}")


# ---------------------------------------------------------------- processes


class ProcessId(NamedTuple):
    """A process identity that survives pid reuse."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The identity of a running (or unreaped) process, or None when it is gone."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None


def live_process(ident: ProcessId) -> psutil.Process | None:
    """The process if `ident` still names a running, non-zombie process."""
    try:
        proc = psutil.Process(ident.pid)
        if abs(proc.create_time() - ident.create_time) > _CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def end_process(ident: ProcessId, timeout: float = 5.0) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL; only if pid AND create_time match.

    Returns True if the process was running and has been ended.
    """
    proc = live_process(ident)
    if proc is None:
        return False
    try:
        proc.terminate()
        proc.resume()  # a stopped process acts on SIGTERM only once continued
        _, alive = psutil.wait_procs([proc], timeout=timeout)
        for rest in alive:
            rest.kill()
        psutil.wait_procs(alive, timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    return True


# ---------------------------------------------------------------- state file


def state_path() -> Path:
    """Where live mounts are recorded ($FUSEBENCH_STATE overrides)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    if os.geteuid() == 0:
        return Path("/run/fusebench/state.json")
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"fusebench-{os.geteuid()}" / "state.json"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_entries(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise CleanupError(f"{path}: unreadable state file ({exc}); remove it after checking `grep fuse /proc/mounts`") from None
    return list(data.get("entries", []))


def _write_entries(path: Path, entries: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"entries": entries}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _state() -> Iterator[list[dict]]:
    """The recorded entries, locked; changes to the list are written back atomically."""
    path = state_path()
    with _file_lock(path.with_name(path.name + ".lock")):
        entries = _read_entries(path)
        before = json.dumps(entries)
        yield entries
        if json.dumps(entries) != before:
            _write_entries(path, entries)


def entries() -> list[dict]:
    """A snapshot of the recorded entries."""
    with _state() as current:
        return list(current)


def _me() -> ProcessId:
    me = ProcessId.of(os.getpid())
    assert me is not None  # this process is running
    return me


def register(label: str, *, mountpoint: Path | None = None, processes: Sequence[ProcessId] = ()) -> str:
    """Record a mount and/or started processes owned by this process; returns the entry id."""
    entry_id = uuid.uuid4().hex
    with _state() as current:
        current.append({
            "id": entry_id,
            "label": label,
            "owner": list(_me()),
            "mountpoint": _canonical(mountpoint) if mountpoint else None,
            "connection": None,
            "processes": [list(p) for p in processes],
            "time": time.time(),
        })
    return entry_id


def update(entry_id: str, *, connection: int | None = None, add_processes: Sequence[ProcessId] = ()) -> None:
    """Add what became known later (the started server, its connection id, a daemonized pid)."""
    with _state() as current:
        for entry in current:
            if entry["id"] == entry_id:
                if connection is not None:
                    entry["connection"] = connection
                known = {tuple(p) for p in entry["processes"]}
                entry["processes"] += [list(p) for p in add_processes if tuple(p) not in known]


def unregister(entry_id: str) -> None:
    """Forget an entry after a clean unmount and stop."""
    with _state() as current:
        current[:] = [entry for entry in current if entry["id"] != entry_id]


def _clear_entry(entry: dict, timeout: float) -> list[str]:
    owner = entry["owner"][0]
    messages = []
    processes = [ProcessId(*p) for p in entry["processes"]]
    alive = [p for p in processes if live_process(p) is not None]
    for proc in processes:
        if proc not in alive and psutil.pid_exists(proc.pid) and ProcessId.of(proc.pid) not in (None, proc):
            messages.append(f"left pid {proc.pid} alone: it is a different process now (start time differs)")
    mountpoint = entry.get("mountpoint")
    mount = mount_entry(mountpoint) if mountpoint else None
    connection = mount.connection if mount else None
    if connection is not None:
        if entry.get("connection") not in (None, connection):
            messages.append(f"left mount {mountpoint} alone: it is a newer FUSE connection than the one recorded")
        else:
            if not alive:
                # The daemon is gone: clients with open files would hang in FLUSH until aborted.
                abort_connection(connection)
            unmount(mountpoint, timeout, connection=connection)
            messages.append(f"cleared leftover mount {mountpoint} from pid {owner}")
    for proc in alive:
        if end_process(proc, timeout):
            messages.append(f"ended leftover process {proc.pid} ({entry['label']}) from pid {owner}")
    return messages


def clear_leftovers(timeout: float = 5.0) -> list[str]:
    """Abort, unmount and end what runs that no longer exist left behind; returns what was done."""
    with _state() as current:
        orphaned = [entry for entry in current if live_process(ProcessId(*entry["owner"])) is None]
    messages = []
    for entry in orphaned:
        try:
            messages += _clear_entry(entry, timeout)
        except CleanupError as exc:
            messages.append(f"could not clear leftover {entry['label']} (kept for the next run): {exc}")
            continue
        unregister(entry["id"])
    return messages
