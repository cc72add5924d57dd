"""The leftovers registry: what a run leaves behind if it is killed, and clearing it later.

Every mount, started process, changed system setting and cgroup made is recorded in a state
file (JSON, replaced atomically, guarded by flock) together with the run that made it (pid +
create_time). An entry whose run is gone was left by a crash; `clear_leftovers()` aborts and
unmounts its mount, ends its processes, removes its cgroup and writes its settings back. A pid
is only signalled when its create_time still matches, so a reused pid is never killed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil

from bench.errors import BenchError
from bench.fusefs.files import atomic_write
from bench.fusefs.mounts import abort_connection, canonical, mount_entry, unmount
from bench.processes import ProcessId, end_process, live_process

STATE_ENV = "FUSEBENCH_STATE"


class RegistryError(BenchError):
    """The leftovers registry (its state file) cannot be read."""


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
        raise RegistryError(f"{path}: unreadable state file ({exc}); remove it after checking `grep fuse /proc/mounts`") from None
    return list(data.get("entries", []))


@contextlib.contextmanager
def _state() -> Iterator[list[dict]]:
    """The recorded entries, locked; changes to the list are written back atomically."""
    path = state_path()
    with _file_lock(path.with_name(path.name + ".lock")):
        entries = _read_entries(path)
        before = json.dumps(entries)
        yield entries
        if json.dumps(entries) != before:
            atomic_write(path, json.dumps({"entries": entries}, indent=1))


def entries() -> list[dict]:
    """A snapshot of the recorded entries."""
    with _state() as current:
        return list(current)


def _me() -> ProcessId:
    me = ProcessId.of(os.getpid())
    assert me is not None  # this process is running
    return me


def _entry(label: str, mountpoint: Path | None, processes: Sequence[ProcessId], settings: Mapping[str, str],
           cgroup: Path | None = None) -> dict:
    """A new entry owned by this process."""
    return {"id": uuid.uuid4().hex, "label": label, "owner": list(_me()),
            "mountpoint": canonical(mountpoint) if mountpoint else None, "connection": None,
            "processes": [list(p) for p in processes], "settings": dict(settings),
            "cgroup": str(cgroup) if cgroup else None, "time": time.time()}


def register(label: str, *, mountpoint: Path | None = None, processes: Sequence[ProcessId] = (),
             settings: Mapping[str, str] | None = None, cgroup: Path | None = None) -> str:
    """Record a mount, started processes, changed settings (path -> the value to write back)
    and/or a cgroup directory made by this process; returns the entry id."""
    entry = _entry(label, mountpoint, processes, settings or {}, cgroup)
    with _state() as current:
        current.append(entry)
    return entry["id"]


def update(entry_id: str, *, connection: int | None = None, add_processes: Sequence[ProcessId] = ()) -> None:
    """Add what became known later (the started server, its connection id, a daemonized pid)."""
    with _state() as current:
        for entry in current:
            if entry["id"] == entry_id:
                if connection is not None:
                    entry["connection"] = connection
                known = {tuple(p) for p in entry["processes"]}
                entry["processes"] += [list(p) for p in add_processes if tuple(p) not in known]


def _live_holders(current: list[dict], path: str) -> list[dict]:
    """The entries of running processes that changed the setting `path`."""
    return [entry for entry in current
            if path in entry.get("settings", {}) and live_process(ProcessId(*entry["owner"])) is not None]


@contextlib.contextmanager
def hold_setting(label: str, path: Path, value: str) -> Iterator[str]:
    """The system setting `path` at `value` while inside; yields the value it had before any
    fusebench process changed it. Processes holding the same setting share it: the first one
    writes `value`, the last one out writes the original back, and a crashed holder's original
    is written back by clear_leftovers once no holder is left. OSError when it cannot be written."""
    key = str(path)
    with _state() as current:
        holders = _live_holders(current, key)
        original = holders[0]["settings"][key] if holders else path.read_text().strip()
        if path.read_text().strip() != value:
            path.write_text(f"{value}\n")
        entry = _entry(label, None, (), {key: original})
        current.append(entry)
    try:
        yield original
    finally:
        with _state() as current:
            current[:] = [e for e in current if e["id"] != entry["id"]]
            if not _live_holders(current, key) and original != value:
                path.write_text(f"{original}\n")


def remove_cgroup(path: Path, timeout: float = 2.0) -> None:
    """Remove a cgroup directory (gone already is fine), moving the processes still in it to its
    parent first; OSError when it cannot be removed within `timeout`."""
    deadline = time.monotonic() + timeout
    while path.is_dir():
        try:
            pids = (path / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                (path.parent / "cgroup.procs").write_text(f"{pid}\n")
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            # EBUSY: a process moved out or exiting is still counted for a moment
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def unregister(entry_id: str) -> None:
    """Forget an entry after a clean unmount, stop or restore."""
    with _state() as current:
        current[:] = [entry for entry in current if entry["id"] != entry_id]


def _clear_entry(entry: dict, timeout: float, held: set[str]) -> list[str]:
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
    cgroup = entry.get("cgroup")
    if cgroup and os.path.isdir(cgroup):
        remove_cgroup(Path(cgroup), timeout)
        messages.append(f"removed leftover cgroup {cgroup} ({entry['label']}) from pid {owner}")
    for path, value in entry.get("settings", {}).items():
        if path in held:  # a running process holds it too: the last one out writes it back
            messages.append(f"left {path} as it is ({entry['label']}) from pid {owner}: a running fusebench holds it")
            continue
        Path(path).write_text(f"{value}\n")
        messages.append(f"restored {path} to {value} ({entry['label']}) from pid {owner}")
    return messages


def clear_leftovers(timeout: float = 5.0) -> list[str]:
    """Abort, unmount, end, remove and restore what runs that no longer exist left behind; returns what was done."""
    with _state() as current:
        orphaned = [entry for entry in current if live_process(ProcessId(*entry["owner"])) is None]
        held = {path for entry in current if entry not in orphaned for path in entry.get("settings", {})}
    # Settings last: what is mounted is cleared while they still hold (with enable_uring off the
    # kernel refuses new ring registrations, so a ring half set up would never become ready).
    orphaned.sort(key=lambda entry: bool(entry.get("settings")))
    messages = []
    for entry in orphaned:
        try:
            messages += _clear_entry(entry, timeout, held)
        except OSError as exc:
            messages.append(f"could not clear leftover {entry['label']} (kept for the next run): {exc}")
            continue
        unregister(entry["id"])
    return messages
