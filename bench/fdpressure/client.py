"""The fd-pressure client: `python -m bench.fdpressure.client DIR START COUNT NOFILE` opens COUNT
known files of DIR, from the START-th on, one by one, holds them, and closes them, driven over
stdin/stdout. It only opens known paths: it never lists the mount or scans fd tables. A step
runs as many clients as their RLIMIT_NOFILE needs, each with its own range of files.

Protocol (one JSON line per message): client {"ready"}; parent "open"; client {"opened",
"failed", "errno", "open_ns", "wall_s"} while holding the files; parent "close"; client
{"close_s"} and exits 0.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import sys
import time
from pathlib import Path

from bench.smallfiles import file_name


def main(directory: Path, start: int, count: int, nofile: int) -> int:
    """Open `count` files from the `start`-th one by one, hold them, close them (protocol above)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    out = sys.stdout

    def say(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    say({"ready": True})
    if sys.stdin.readline().strip() != "open":
        return 2
    fds: list[int] = []
    open_ns: list[int] = []
    first_error = None
    started = time.perf_counter()
    for index in range(start, start + count):
        path = directory / file_name(index)
        t0 = time.perf_counter_ns()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            first_error = first_error or errno.errorcode.get(exc.errno, str(exc.errno))
            continue
        elapsed = time.perf_counter_ns() - t0
        try:
            # Proves the open file works: in passthrough the read (end of file: the files are
            # empty) goes to the backing file.
            os.read(fd, 1)
        except OSError as exc:
            os.close(fd)
            first_error = first_error or f"{errno.errorcode.get(exc.errno, str(exc.errno))} (read)"
            continue
        fds.append(fd)
        open_ns.append(elapsed)
    say({
        "opened": len(fds),
        "failed": count - len(fds),
        "errno": first_error,
        "open_ns": open_ns,
        "wall_s": time.perf_counter() - started,
    })
    if sys.stdin.readline().strip() != "close":
        return 2
    started = time.perf_counter()
    for fd in fds:
        os.close(fd)
    say({"close_s": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python -m bench.fdpressure.client DIR START COUNT NOFILE")
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
