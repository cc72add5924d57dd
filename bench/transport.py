"""How an external FUSE server's requests reach it: /dev/fuse or FUSE over io_uring, judged
from what the kernel exposes of its io_uring instances.

A FUSE ring is an io_uring instance of the daemon (`/proc/PID/fd/N` links to
`anon_inode:[io_uring]`); every request the kernel sends through it completes one command, so
it advances the instance's `CqTail:` counter in `/proc/PID/fdinfo/N` (a u32 that wraps). The
completions of every instance of the daemon and its descendants over the measured run, next to
the requests the tracepoint counted, decide the transport (`judge`). An instance is known by
its inode (fdinfo `ino:`), so the several fds one may have (a dup, Python's mmap keeps one,
a child sharing it) count once. The limits: the count cannot tell a FUSE ring from one the
daemon uses for its own disk I/O, so a daemon using io_uring for both over /dev/fuse may pass
for `uring` (and a ring server's own I/O adds to its count), and fewer completions than
requests is `unknown`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.fusefs.options import TRANSPORTS as BUILTIN_TRANSPORTS

PROC = Path("/proc")
DEV, URING = BUILTIN_TRANSPORTS  # as the built-in server names them
UNKNOWN = "unknown"
TRANSPORTS = (DEV, URING, UNKNOWN)
IO_URING_LINK = "anon_inode:[io_uring]"
# The kernel sends these through /dev/fuse even when the ring serves everything else.
NOT_ON_RING = frozenset({"FORGET", "BATCH_FORGET", "INTERRUPT"})
# Completions at least this share of the requests: the requests went through the rings.
URING_SHARE = 0.9
U32 = 1 << 32

RingTails = dict[str, int]  # "ino N" (the instance's inode) -> CqTail of that io_uring instance


def fdinfo_field(fdinfo: str, name: str) -> int | None:
    """An integer field (`CqTail`, `ino`) of an fdinfo text, None when it has none."""
    for line in fdinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return int(value)
    return None


def _descendants(pid: int, proc: Path) -> list[int]:
    """`pid`'s child processes and theirs (parents from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        fields = text[text.rindex(")") + 2:].split()  # after the parenthesised name: state, ppid, ...
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def ring_tails(pid: int, *, proc: Path = PROC) -> RingTails | None:
    """CqTail of every io_uring instance process `pid` and its descendants hold, once each (empty: none);
    None when `pid`'s fds cannot be read (it is gone, or this process may not look)."""
    tails: RingTails = {}
    for index, process in enumerate([pid, *_descendants(pid, proc)]):
        try:
            fds = list((proc / str(process) / "fd").iterdir())
        except OSError:
            if index == 0:
                return None
            continue  # a child that ended meanwhile
        for fd in fds:
            try:
                if fd.readlink().name != IO_URING_LINK:
                    continue
                fdinfo = (proc / str(process) / "fdinfo" / fd.name).read_text()
            except OSError:
                continue  # closed meanwhile
            tail, inode = fdinfo_field(fdinfo, "CqTail"), fdinfo_field(fdinfo, "ino")
            if tail is not None:
                tails[f"ino {inode}" if inode is not None else f"fd {process}/{fd.name}"] = tail
    return tails


def ring_completions(before: RingTails, after: RingTails) -> int:
    """Completions of the instances seen after, since before. An instance new since then counts
    from 0, and so does one whose counter went back (its inode reused by a new instance: a delta
    of 2^31 or more is not a run's worth of completions); the u32 counters wrap."""
    total = 0
    for key, tail in after.items():
        delta = (tail - before.get(key, 0)) % U32
        total += tail if delta >= U32 // 2 else delta
    return total


def builtin_ring_requests(stats: Mapping[str, Any]) -> int:
    """Requests the built-in server answered through its ring so far (its stats file)."""
    return sum((stats.get("ring") or {}).get("requests", {}).values())


def judge(before: RingTails | None, after: RingTails | None,
          requests: Mapping[str, int] | None) -> tuple[str, int | None]:
    """(transport, ring completions) of a daemon whose io_uring instances were `before` and
    `after` the run, which was sent `requests` per opcode (None: not counted). No instance at
    all: `dev` (a ring needs one). Requests sent and no completion: `dev`. Completions at least
    URING_SHARE of the requests that can go through a ring: `uring`. Anything else: `unknown`."""
    if before is None or after is None:
        return UNKNOWN, None
    if not before and not after:
        return DEV, 0
    completions = ring_completions(before, after)
    sent = sum(n for op, n in requests.items() if op not in NOT_ON_RING) if requests is not None else 0
    if not sent:
        return UNKNOWN, completions
    if completions == 0:
        return DEV, 0
    return (URING if completions >= URING_SHARE * sent else UNKNOWN), completions
