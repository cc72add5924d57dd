"""The server's options, each declared once: name, type, default, limits, the modes it applies
to, and its help. From this one table come the server's command line (`cli`), its validated
`Options`, the argv fusebench starts it with (`server_argv`), and the keys of fusebench's
`fuse` and `passthrough` scenario targets.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.fusefs.units import parse_duration

MODES = ("plain", "passthrough")
FD_POLICIES = ("keep", "close", "cache")
TRANSPORTS = ("dev", "uring")
MAX_PAGES_LIMIT = 256  # the kernel's FUSE_MAX_MAX_PAGES: 1 MiB requests


@dataclass(frozen=True)
class Option:
    """One server option: `--name-with-dashes` on the command line, `name` in a scenario."""

    name: str
    type: type  # bool, int, float or str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None  # strict lower bound
    seconds: bool = False  # a duration: 0.25, 500ms, 2m
    only: str | None = None  # the one mode it applies to (None: both); the other mode ignores it ...
    transport: str | None = None  # the one transport it applies to (None: both): left out with the other
    conflict: str = ""  # ... unless this says why the other mode refuses it (bool options)
    runner: bool = False  # plumbing fusebench sets itself: not a scenario key
    shown_default: str | None = None  # how a default of None reads ("CPU count")

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")

    def applies_to(self, mode: str) -> bool:
        """Whether the option has an effect in `mode`."""
        return self.only in (None, mode)

    def parse(self, text: str) -> Any:
        """A command-line value as this option's type (ValueError when it is not one)."""
        if self.seconds:
            return parse_duration(text)
        return self.type(text)

    def problem(self, value: Any) -> str | None:
        """Why `value` is out of this option's limits, or None."""
        if value is None or isinstance(value, bool):
            return None
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, not {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum:g}, not {value}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum:g}, not {value}"
        if self.above is not None and value <= self.above:
            return f"must be > {self.above:g}, not {value}"
        return None


OPTIONS: tuple[Option, ...] = (
    Option("mode", str, "plain", "plain: every read and write goes through the daemon; passthrough: "
           "the kernel reads and writes the backing files itself", choices=MODES, runner=True),
    Option("fd_policy", str, "keep", "`keep`: the daemon keeps its fd of each backing file open; `close`: "
           "it closes it after registering (the kernel keeps the file: a \"hidden\" fd); `cache`: an LRU "
           "of backing ids", choices=FD_POLICIES, only="passthrough"),
    Option("cache_size", int, 1024, "LRU size of backing ids for `fd_policy: cache`", minimum=1,
           only="passthrough"),
    Option("transport", str, "dev", "how requests reach the server: `dev`: read from /dev/fuse by worker "
           "threads; `uring`: FUSE over io_uring, one queue per CPU with a thread each (Linux 6.14+, "
           "/sys/module/fuse/parameters/enable_uring Y)", choices=TRANSPORTS),
    Option("ring_depth", int, 32, "with `transport: uring`: requests each CPU queue holds at once (each entry has a payload buffer "
           "of max_pages pages: possible CPUs x ring_depth x 1 MiB by default)", minimum=1, maximum=1024,
           transport="uring"),
    Option("ring_poll", float, 0.0, "with `transport: uring`: how long a queue thread looks for the next request "
           "before it sleeps (busy polling: CPU for latency; 0: sleep at once). On the 2-vCPU VM, 4k QD1 reads "
           "from tmpfs went from 21k to 55k IOPS with 50us, from disk from 16.1k to 15.2k", minimum=0,
           maximum=0.01, seconds=True, transport="uring"),
    Option("threads", int, None, "with `transport: dev`: worker threads reading /dev/fuse (1-256)", minimum=1, maximum=256,
           shown_default="CPU count", transport="dev"),
    Option("max_pages", int, MAX_PAGES_LIMIT, "pages per request (256 = 1 MiB)", minimum=1,
           maximum=MAX_PAGES_LIMIT),
    Option("max_background", int, 64, "max background requests", minimum=1, maximum=65535),
    Option("batch", int, 32, "plain mode: READs a worker keeps in flight through native AIO (1: one "
           "preadv each)", minimum=1, only="plain"),
    Option("writeback_cache", bool, False, "writeback caching (writes collected in the page cache)",
           only="plain", conflict="writeback_cache disables passthrough in the kernel"),
    Option("keep_cache", bool, False, "keep the page cache across opens (FOPEN_KEEP_CACHE)", only="plain",
           conflict="keep_cache cannot be combined with passthrough (the kernel fails such opens with EIO)"),
    Option("direct_io", bool, False, "FOPEN_DIRECT_IO: bypass the page cache of the FUSE inode",
           only="plain", conflict="direct_io cannot be combined with passthrough (it silently sends every "
           "read and write to the daemon again)"),
    Option("attr_timeout", float, 1.0, "attribute cache timeout", minimum=0, seconds=True),
    Option("entry_timeout", float, 1.0, "dentry cache timeout", minimum=0, seconds=True),
    Option("xattr", str, "off", "`on`: serve extended attributes; `off`: answer ENOSYS so the kernel stops "
           "asking", choices=("on", "off")),
    Option("stats_file", str, None, "write counters as JSON to this file (replaced atomically)", runner=True),
    Option("stats_interval", float, 0.25, "seconds between stats-file writes", above=0, seconds=True,
           runner=True),
    Option("nofile", int, None, "the daemon's RLIMIT_NOFILE, set after start-up", minimum=1, runner=True),
)
BY_NAME = {option.name: option for option in OPTIONS}


def scenario_options(mode: str) -> list[Option]:
    """The options a scenario target of `mode` may set: those that apply to it, and those it
    refuses with a reason (so a scenario gets the reason, not "unknown key")."""
    return [o for o in OPTIONS if not o.runner and (o.applies_to(mode) or o.conflict)]


def for_transport(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` without the options of the transport they do not use."""
    transport = values.get("transport") or BY_NAME["transport"].default
    return {name: value for name, value in values.items()
            if name not in BY_NAME or BY_NAME[name].transport in (None, transport)}


def conflicts(mode: str, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(option, why) for every option `mode` refuses that `values` turns on."""
    return [(o.name, o.conflict) for o in OPTIONS
            if o.conflict and not o.applies_to(mode) and values.get(o.name)]


def _options_class() -> type:
    fields = [("source", str), ("mountpoint", str)]
    fields += [(o.name, o.type | None, dataclasses.field(default=o.default)) for o in OPTIONS]

    def passthrough(self) -> bool:
        """True in passthrough mode."""
        return self.mode == "passthrough"

    def max_write(self) -> int:
        """Largest READ/WRITE payload negotiated with the kernel."""
        return self.max_pages * 4096

    def workers(self) -> int:
        """Worker threads: as asked, else one per CPU."""
        return self.threads or os.cpu_count() or 1

    def summary(self) -> dict[str, Any]:
        """The options as the stats file reports them (threads: the /dev/fuse workers that serve;
        over io_uring the ring's queues are in the stats file's `ring`)."""
        return dict(dataclasses.asdict(self), threads=self.workers if self.transport == "dev" else 1)

    namespace = {"passthrough": property(passthrough), "max_write": property(max_write),
                 "workers": property(workers), "summary": summary,
                 "__doc__": "How to mount and serve: SOURCE, MOUNTPOINT and every option of OPTIONS."}
    options = dataclasses.make_dataclass("Options", fields, frozen=True, namespace=namespace)
    options.__module__ = __name__
    return options


Options = _options_class()


def validate(values: Mapping[str, Any]) -> list[str]:
    """Every problem of a set of option values (limits, then mode conflicts); empty when fine."""
    problems = [f"{BY_NAME[name].flag} {why}" for name, value in values.items()
                if name in BY_NAME and (why := BY_NAME[name].problem(value))]
    mode = values.get("mode", BY_NAME["mode"].default)
    problems += [f"{why}: not allowed with --mode {mode}" for _, why in conflicts(mode, values)]
    return problems


def server_argv(values: Mapping[str, Any]) -> list[str]:
    """Command-line arguments for the options in `values` (None and False are left out)."""
    argv: list[str] = []
    for name, value in values.items():
        flag = BY_NAME[name].flag
        if value is None or value is False:
            continue
        argv += [flag] if value is True else [flag, str(value)]
    return argv
