"""Scenario YAML -> validated, typed model; list values are sweeps that expand into cells.

Errors are raised as ScenarioError with `file:line: message` and a hint of the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from bench.fields import Duration, LocatedError, Name, Seed, Size, Strict, key, passes
from bench.fusefs.options import (
    MODES,
    Option,
    conflicts,
    for_transport,
    scenario_options,
)
from bench.fusefs.units import format_size
from bench.programs import CATALOG, Program, ProgramEntry
from bench.scenario_file import (
    ScenarioError,
    cut,
    load_document,
    read_scenario_text,
    shown,
)
from bench.tree import TreeSpec
from bench.vocabulary import (
    ASYNC_IOENGINES,
    FILE_SERVICE_TYPES,
    FIO,
    IOENGINES,
    METADATA_ENGINES,
    MIXED,
    OPENS,
    RW_NAMES,
    STAT_TYPES,
    TREE_CHANGING_ENGINES,
)
from bench.workspace import DEFAULT_WORKDIR_ROOT, system_dir_refusal

RwMode = Literal[RW_NAMES]
IoEngine = Literal[IOENGINES]
# `log_interval: auto` gives about this many points over a run, at least this far apart and at most this far.
LOG_POINTS, LOG_INTERVAL_MIN_S, LOG_INTERVAL_MAX_S = 20, 0.1, 1.0


# ---------------------------------------------------------------- targets


class NativeTarget(Strict):
    """The source directory itself, no FUSE in between."""

    name: Name
    type: Literal["native"]


def _option_field(option: Option) -> tuple[Any, Any]:
    """A server option as a scenario key: its type, default, limits and description."""
    if option.choices:
        annotation: Any = Literal[option.choices]
    elif option.seconds:
        annotation = Duration
    else:
        annotation = option.type
    if option.default is None:
        annotation = annotation | None
    limits = {"ge": option.minimum, "le": option.maximum, "gt": option.above}
    refusing = " or ".join(mode for mode in MODES if not option.applies_to(mode))
    meaning = option.help + (f"; not allowed with {refusing}" if option.conflict else "")
    default = f"{option.default:g}s" if option.seconds else option.default
    return annotation, key(default, meaning, shown=option.shown_default,
                           **{name: value for name, value in limits.items() if value is not None})


class _BuiltinTarget(Strict):
    """The built-in server (bench.fusefs); its option keys come from bench.fusefs.options."""

    name: Name

    @model_validator(mode="after")
    def _mode_rules(self):
        refused = conflicts(MODE_OF_TYPE[self.type], self.model_dump())
        if refused:
            name, why = refused[0]
            raise LocatedError((name,), why)
        return self


MODE_OF_TYPE = {"fuse": "plain", "passthrough": "passthrough"}


def _builtin_target(name: str, doc: str, kind: str) -> type[_BuiltinTarget]:
    fields = {option.name: _option_field(option) for option in scenario_options(MODE_OF_TYPE[kind])}
    return create_model(name, __base__=_BuiltinTarget, __doc__=doc, type=(Literal[kind], ...), **fields)


FuseTarget = _builtin_target(
    "FuseTarget", "Built-in server with passthrough off: every read and write goes through the daemon.", "fuse")
PassthroughTarget = _builtin_target(
    "PassthroughTarget", "Built-in server with passthrough on: the kernel reads and writes the backing file.",
    "passthrough")


def builtin_options(target: FuseTarget | PassthroughTarget) -> dict[str, Any]:
    """The server options of a built-in target (mode included; those of the transport it does not
    use left out), for bench.fusefs.options.server_argv."""
    values = target.model_dump(exclude={"name", "type"})
    return for_transport({"mode": MODE_OF_TYPE[target.type], **values})


def describe_target(target: AnyTarget) -> str:
    """What a target is, in words a report prints next to its numbers (a built-in target is
    fusebench's own Python server, not "FUSE" in general)."""
    if target.type == "native":
        return "the source directory itself, no FUSE"
    if target.type == "external":
        return "external FUSE server: " + " ".join(target.command)
    mode = ("plain mode: every read and write goes through the daemon" if target.type == "fuse" else
            "passthrough mode: the kernel reads and writes the backing files")
    shown = {None: "auto", True: "on", False: "off"}
    settings = ", ".join(f"{name} {shown.get(value, value) if isinstance(value, (bool, type(None))) else value}"
                         for name, value in builtin_options(target).items() if name != "mode")
    return f"fusebench's built-in FUSE server (Python, bench/fusefs), {mode}; {settings}"


class ExternalTarget(Strict):
    """Any FUSE server started from an argv template; no shell is involved."""

    name: Name
    type: Literal["external"]
    command: list[str] = key(..., "argv; `{source}` and `{mountpoint}` are replaced by absolute paths "
                             "(`{mountpoint}` is required)", min_length=1)
    ready_timeout: Duration = key("10s", "how long the mount may take to appear")
    stop_timeout: Duration = key("5s", "how long the server may take to exit after the unmount")
    needs_uring: bool = key(False, "the server uses FUSE over io_uring (e.g. libfuse's `-o io_uring`): the runner "
                            "turns `/sys/module/fuse/parameters/enable_uring` on for the run and back after")

    @field_validator("command")
    @classmethod
    def _needs_mountpoint(cls, command: list[str]) -> list[str]:
        if not any("{mountpoint}" in arg for arg in command):
            raise ValueError("command must contain {mountpoint} (and usually {source})")
        for arg in command:
            leftover = re.sub(r"\{(source|mountpoint)\}", "", arg)
            if "{" in leftover or "}" in leftover:
                raise ValueError(f"{shown(arg)}: only {{source}} and {{mountpoint}} may be substituted")
        return command

    def argv(self, source: Path, mountpoint: Path) -> list[str]:
        """The command with {source} and {mountpoint} replaced by absolute paths."""
        return [
            arg.replace("{source}", str(source.resolve())).replace("{mountpoint}", str(mountpoint.resolve()))
            for arg in self.command
        ]


AnyTarget = Union[NativeTarget, FuseTarget, PassthroughTarget, ExternalTarget]


Target = Annotated[AnyTarget, Field(discriminator="type")]


def needs_uring(target: AnyTarget) -> bool:
    """Whether `target` needs FUSE over io_uring: a built-in one with `transport: uring`, or an
    external one with `needs_uring: true`."""
    if target.type == "external":
        return target.needs_uring
    return getattr(target, "transport", None) == "uring"

# ---------------------------------------------------------------- workloads

# name -> (scalar type, its key). Every one of these may be given as a list: a sweep.
_WORKLOAD_FIELDS: dict[str, tuple[Any, Any]] = {
    "rw": (RwMode | None, key(None, ", ".join(f"`{name}`" for name in RW_NAMES) + "; metadata engines set their "
                              "own", shown="required")),
    "bs": (Annotated[Size, Field(ge=512, le=64 << 20)], key("4k", "block size (512 bytes to 64M)")),
    "size": (Annotated[Size, Field(ge=4096, le=1 << 40)],
             key("256M", "total data set, split over `nrfiles` (a multiple of `bs`; 4k to 1T)")),
    "runtime": (Annotated[Duration, Field(gt=0, le=3600)], key("5s", "measured time (fio runs time-based where "
                                                                      "no pass can hit an earlier pass's cache)")),
    "ramp_time": (Annotated[Duration, Field(ge=0, le=600)], key("0s", "unmeasured warm-up inside the fio run")),
    "ioengine": (IoEngine, key("psync", ", ".join(f"`{name}`" for name in IOENGINES) + "; " + ", ".join(
        f"`{name}`" for name in METADATA_ENGINES) + " time one create, stat or unlink per file (one file per "
        "operation: `bs` and `direct` do not apply)")),
    "stat_type": (Literal[STAT_TYPES] | None, key(None, "`filestat` only: the call it times: " + ", ".join(
        f"`{name}`" for name in STAT_TYPES), shown="`stat`")),
    "iodepth": (Annotated[int, Field(ge=1, le=4096)], key(1, "queue depth; above 1 needs " + ", ".join(
        f"`{name}`" for name in ASYNC_IOENGINES))),
    "direct": (bool, key(False, "O_DIRECT")),
    "numjobs": (Annotated[int, Field(ge=1, le=256)], key(1, "fio jobs (processes), all on the same files; "
                                                             "metadata engines split `nrfiles` over them")),
    "nrfiles": (Annotated[int, Field(ge=1, le=100_000)], key(1, "number of data files")),
    "openfiles": (Annotated[int, Field(ge=1, le=100_000)] | None,
                  key(None, "files fio keeps open at once (at most `nrfiles`); `1` with `file_service_type: "
                      "sequential` opens, reads whole and closes one file after the other", shown="all")),
    "file_service_type": (Literal[FILE_SERVICE_TYPES] | None, key(None, "which file fio serves next: " + ", ".join(
        f"`{name}`" for name in FILE_SERVICE_TYPES), shown="`roundrobin`")),
    "rwmixread": (Annotated[int, Field(ge=0, le=100)] | None,
                  key(None, "read percentage for " + ", ".join(f"`{name}`" for name in MIXED), shown="fio's 50")),
    "fsync": (Annotated[int, Field(ge=0)], key(0, "fsync every N writes (0: never)")),
    "end_fsync": (bool, key(False, "fsync at the end of the job (inside the measured run)")),
    "cache": (Literal["cold", "warm"], key("cold", "`cold`: drop caches before the run; `warm`: one unmeasured "
                                                   "fio pass first (not for engines that change the tree)")),
    "buffers": (Literal["malloc", "hugepages"], key(
        "malloc", "fio's I/O buffers: `malloc` (fio's default) or `hugepages` (`mem=shmhuge`; the runner adds the "
        "2 MiB pages fio needs to `vm.nr_hugepages` for the run and gives them back). With O_DIRECT the buffer's "
        "layout decides how many segments each request has, so `hugepages` gives every target the same disk path")),
    "log_interval": (Annotated[Duration, Field(ge=0, le=60)] | Literal["auto"], key(
        "auto", "interval of fio's bandwidth, IOPS and latency logs (`log_avg_msec`: each point averages it), kept "
        f"in the results folder; `auto`: (`runtime` + `ramp_time`) / {LOG_POINTS}, between "
        f"{LOG_INTERVAL_MIN_S * 1000:g} ms and {LOG_INTERVAL_MAX_S:g} s; `0`: no logs")),
}
SWEEPABLE = tuple(_WORKLOAD_FIELDS)
SIZE_KEYS = ("bs", "size")  # the workload keys that are sizes, shown as fio spells them (4k, 1m)


class _CellChecks(Strict):
    family: ClassVar[str] = FIO

    @model_validator(mode="before")
    @classmethod
    def _engine_direction(cls, data: Any) -> Any:
        # A metadata engine counts its operations in one direction: that is its rw.
        if isinstance(data, dict) and data.get("rw") is None and data.get("ioengine") in METADATA_ENGINES:
            return dict(data, rw=METADATA_ENGINES[data["ioengine"]])
        return data

    @model_validator(mode="after")
    def _consistent(self):
        if self.rw is None:
            raise LocatedError(("rw",), f"rw is required for ioengine {self.ioengine}: one of {', '.join(RW_NAMES)}")
        if self.stat_type is not None and self.ioengine != "filestat":
            raise LocatedError(("stat_type",), "stat_type only applies to ioengine filestat")
        if self.openfiles is not None and self.openfiles > self.nrfiles:
            raise LocatedError(("openfiles",), "openfiles cannot exceed nrfiles")
        if self.ioengine in METADATA_ENGINES:
            return self._metadata_consistent()
        if self.size % self.bs:
            raise LocatedError(("size",), f"size {format_size(self.size)} is not a multiple of bs {format_size(self.bs)}")
        if self.size // self.nrfiles < self.bs:
            raise LocatedError(("nrfiles",), "size / nrfiles is smaller than bs: each file needs at least one block")
        if self.rwmixread is not None and self.rw not in MIXED:
            raise LocatedError(("rwmixread",), f"rwmixread only applies to {', '.join(MIXED)}")
        if self.iodepth > 1 and self.ioengine not in ASYNC_IOENGINES:
            raise LocatedError(
                ("iodepth",),
                f"iodepth {self.iodepth} needs an async ioengine ({', '.join(ASYNC_IOENGINES)}); "
                f"{self.ioengine} does one I/O at a time",
            )
        return self

    def _metadata_consistent(self):
        engine = self.ioengine
        if self.rw != METADATA_ENGINES[engine]:
            raise LocatedError(("rw",), f"rw does not apply to ioengine {engine} (it counts its operations as "
                                        f"{METADATA_ENGINES[engine]}s); leave rw out")
        if self.direct or self.iodepth > 1:
            raise LocatedError(("direct" if self.direct else "iodepth",),
                               f"ioengine {engine} does one operation per file: direct and iodepth do not apply")
        if engine in TREE_CHANGING_ENGINES and self.cache == "warm":
            raise LocatedError(("cache",), f"ioengine {engine} changes the tree, so a warm pass would leave nothing "
                                           "to measure; use cache: cold")
        if self.size < self.nrfiles:
            raise LocatedError(("size",), "size / nrfiles must be at least one byte per file")
        if self.nrfiles % self.numjobs:
            raise LocatedError(("numjobs",), f"ioengine {engine} splits nrfiles over the jobs: nrfiles "
                                             f"{self.nrfiles} is not a multiple of numjobs {self.numjobs}")
        return self

    def describe(self) -> str:
        """How the plan shows this cell."""
        if self.ioengine in METADATA_ENGINES:
            return f"{self.ioengine} {self.nrfiles} files {self.runtime:g}s {self.cache}"
        return f"{self.rw} bs={format_size(self.bs)} size={format_size(self.size)} {self.runtime:g}s {self.cache}"

    def loops(self) -> bool:
        """Whether fio runs until `runtime` (time_based). Looping is only fair when no pass can hit
        what an earlier pass cached: a cold buffered run reads or writes each byte once (and a
        metadata engine touches each file once), with runtime as a cap. Creating or deleting a
        file twice is not the same operation, so those engines never loop."""
        if self.ioengine in METADATA_ENGINES:
            return self.ioengine == "filestat" and self.cache == "warm"
        return self.direct or self.cache == "warm"

    def log_interval_s(self) -> float | None:
        """The interval fio's logs average over (`log_interval`); None: no logs."""
        if self.log_interval == "auto":
            return min(LOG_INTERVAL_MAX_S, max(LOG_INTERVAL_MIN_S, (self.runtime + self.ramp_time) / LOG_POINTS))
        return self.log_interval or None

    def estimate_s(self) -> float:
        """Expected time of the measured run (a warm run twice); a run that does not loop is
        guessed from its files and bytes, capped at `runtime`."""
        one_pass = self.nrfiles * ESTIMATE_S_PER_FILE + self.size / ESTIMATE_BYTES_PER_S
        measured = self.runtime + self.ramp_time if self.loops() else min(self.runtime, one_pass)
        return measured * passes(self.cache)


# Rough costs of a pass that does not loop, for the plan's estimate only.
ESTIMATE_S_PER_FILE = 0.0003
ESTIMATE_BYTES_PER_S = 100 << 20

WorkloadCell = create_model(
    "WorkloadCell",
    __base__=_CellChecks,
    __doc__="One concrete fio workload: a workload with every sweep resolved.",
    name=(Name, ...),
    sweep=(dict[str, Any], {}),
    **{name: (annotation, field.default) for name, (annotation, field) in _WORKLOAD_FIELDS.items()},
)


def _sweepable(annotation: Any) -> Any:
    return Union[annotation, Annotated[list[annotation], Field(min_length=1)]]


class _WorkloadBase(Strict):
    def cells(self) -> list[WorkloadCell]:
        """Every combination of the list values, in file order."""
        values = self.model_dump(exclude={"name"})
        swept = [name for name in SWEEPABLE if isinstance(values[name], list)]
        combos = itertools.product(*(values[name] for name in swept)) if swept else [()]
        cells = []
        for combo in combos:
            sweep = dict(zip(swept, combo))
            try:
                cells.append(WorkloadCell(name=self.name, sweep=sweep, **dict(values, **sweep)))
            except ValidationError as exc:
                # Only the cross-field checks can fail here: every field was validated by the Workload.
                cause = exc.errors()[0].get("ctx", {}).get("error")
                where = ", ".join(f"{name}={value}" for name, value in sweep.items())
                message = f"{cause}" + (f" (in the sweep cell {where})" if where else "")
                raise LocatedError(getattr(cause, "loc", ()), message) from None
        return cells

    @model_validator(mode="after")
    def _cells_are_valid(self):
        self.cells()
        return self


Workload = create_model(
    "Workload",
    __base__=_WorkloadBase,
    __doc__="A workload as written; any field given as a list is swept.",
    name=(Name, key(..., "workload name")),
    **{name: (_sweepable(annotation), field) for name, (annotation, field) in _WORKLOAD_FIELDS.items()},
)

WorkloadDefaults = create_model(
    "WorkloadDefaults",
    __base__=Strict,
    __doc__="Workload keys every entry of `workloads` starts from (its own keys win).",
    **{name: (_sweepable(annotation) | None, None) for name, (annotation, _) in _WORKLOAD_FIELDS.items()},
)


def with_defaults(data: Any) -> Any:
    """The scenario document with its `defaults` under every workload's own keys."""
    if not (isinstance(data, dict) and isinstance(data.get("defaults"), dict)
            and isinstance(data.get("workloads"), list)):
        return data
    return dict(data, workloads=[{**data["defaults"], **workload} if isinstance(workload, dict) else workload
                                 for workload in data["workloads"]])


def _count_cells(workloads: Any) -> None:
    """Refuse sweeps that multiply past MAX_CELLS before any cell is made (a few lists of a
    hundred values each would otherwise keep validation busy for hours)."""
    total = 0
    for index, workload in enumerate(workloads if isinstance(workloads, list) else []):
        values = workload.values() if isinstance(workload, dict) else ()
        total += math.prod(len(value) for value in values if isinstance(value, list))
        if total > MAX_CELLS:
            raise LocatedError(("workloads", index), f"the sweeps make more than {MAX_CELLS:,} cells (each "
                               "combination of the list values is a cell); sweep fewer values")


# ---------------------------------------------------------------- open/close loops


class Opens(Strict):
    """Open and close existing files, one after the other, as fast as one process can: open
    latency and opens/s through a target (the passthrough fd policies differ here)."""

    family: ClassVar[str] = OPENS

    name: Name = key(..., "workload name (unique among the scenario's workloads, opens and programs)")
    files: int = key(1000, "files opened and closed in turn", ge=1, le=1_000_000)
    runtime: Duration = key("5s", "how long the loop runs", gt=0, le=3600)
    cache: Literal["cold", "warm"] = key("cold", "`cold`: caches dropped before the run; `warm`: one unmeasured "
                                                 "loop first")

    def describe(self) -> str:
        """How the plan shows this cell."""
        return f"open/close {self.files} files {self.runtime:g}s {self.cache}"

    def estimate_s(self) -> float:
        """Expected time of the measured run (a warm run twice)."""
        return self.runtime * passes(self.cache)


Cell = Union[WorkloadCell, Opens, Program]


def cell_key(cell: Cell) -> str:
    """A readable, file-name-safe id of a cell: `randread-4k` or `randread-4k_iodepth-32`."""
    parts = [cell.name]
    for name, value in getattr(cell, "sweep", {}).items():
        parts.append(f"{name}-{swept_value_text(name, value)}")
    return "_".join(parts)


def swept_value_text(name: str, value: Any) -> str:
    """A swept value as cell names show it: sizes as fio spells them (4k), the rest lower case."""
    return str(format_size(value) if name in SIZE_KEYS else value).lower()


# ---------------------------------------------------------------- fd pressure


# How the files that stay after an fd-pressure step's close are released (one step per entry).
RELEASES = ("drop_caches", "memory_pressure", "unmount")
MAX_CLIENTS = 1000
MIN_CLIENT_NOFILE = 64  # a client interpreter needs a few fds of its own besides its files
MAX_OPEN_FILES = 10_000_000


def _each_once(values: list) -> list:
    repeated = [value for index, value in enumerate(values) if value in values[:index]]
    if repeated:
        raise ValueError(f"{repeated[0]} is listed twice: list each value once")
    return values


OpenFiles = Annotated[list[Annotated[int, Field(ge=1, le=MAX_OPEN_FILES)]], AfterValidator(_each_once)]
Releases = Annotated[list[Literal[RELEASES]], AfterValidator(_each_once)]


class FdTarget(Strict):
    """An fd-pressure target with steps of its own (an entry of fd_pressure.targets)."""

    name: Name = key(..., "a target defined above")
    open_files: OpenFiles | None = key(None, "its own list of N", shown="fd_pressure's", min_length=1)
    release: Releases | None = key(None, "its own release methods", shown="fd_pressure's", min_length=1)


class FdPressure(Strict):
    """Open N files through each listed target and account for every fd."""

    targets: list[Name | FdTarget] = key(..., "targets defined above: names, or `{name, open_files, release}` for "
                                         "steps of its own", min_length=1)
    open_files: OpenFiles = key(..., f"list of N (1 to {MAX_OPEN_FILES:,})", min_length=1)
    daemon_nofile: int = key(4096, "the daemon's RLIMIT_NOFILE", ge=16)
    client_nofile: int | None = key(None, "each client's RLIMIT_NOFILE", shown="the hard limit", ge=MIN_CLIENT_NOFILE)
    clients: Annotated[int, Field(ge=1, le=MAX_CLIENTS)] | Literal["auto"] = key(
        "auto", f"client processes the N opens are spread over (1-{MAX_CLIENTS}), or `auto`: as many as their "
        "RLIMIT_NOFILE needs")
    release: Releases = key(
        ["drop_caches"], "after the close, how what stays (idle cached backing ids) is released, one step per "
        "entry: `drop_caches` (the kernel forgets the inodes), `memory_pressure` (the clients' memory cgroup is "
        "reclaimed) or `unmount`", min_length=1, shown="`[drop_caches]`")

    @model_validator(mode="after")
    def _steps_once(self) -> FdPressure:
        seen: set[tuple[str, int, str]] = set()
        for index, entry in enumerate(self.targets):
            mine = self._entry_steps(entry)
            repeated = next((step for step in mine if step in seen), None)
            if repeated:
                name, count, release = repeated
                raise LocatedError(("targets", index), f"target {name!r} would run N={count} with release {release} "
                                   "a second time: list each N and release of a target once")
            seen.update(mine)
        return self

    def target_names(self) -> list[str]:
        """The listed targets' names, in order."""
        return [entry if isinstance(entry, str) else entry.name for entry in self.targets]

    def steps(self) -> list[tuple[str, int, str]]:
        """Every step as (target name, N, release), in the order they run."""
        return [step for entry in self.targets for step in self._entry_steps(entry)]

    def _entry_steps(self, entry: str | FdTarget) -> list[tuple[str, int, str]]:
        mine = entry if isinstance(entry, FdTarget) else None
        name = entry if mine is None else mine.name
        return [(name, count, release) for count in (mine and mine.open_files) or self.open_files
                for release in (mine and mine.release) or self.release]


# ---------------------------------------------------------------- scenario

# `repeat: auto` runs at least this many repetitions before it asks whether every comparison
# is decided: with fewer, a t-interval on two values per side is too wide to decide anything.
AUTO_MIN_REPEAT = 3
# Far beyond what a machine runs in a week; past them, expanding sweeps or planning would stall.
MAX_CELLS = 2_000
MAX_MESSAGES = 20  # errors printed per file; the first ones say enough to fix the next
MAX_RUNS = 100_000


class Scenario(Strict):
    """A whole scenario file."""

    name: Name = key(..., "scenario name (results and workdir names derive from it)")
    description: str = key("", "free text", shown='`""`')
    repeat: Annotated[int, Field(ge=1, le=1000)] | Literal["auto"] = key(
        3, "measured repetitions of every cell on every target (1-1000), or `auto`: whole repetitions are added "
        f"(at least {AUTO_MIN_REPEAT}) until every comparison with the baseline is decided, or the budget "
        "(`max_repeat`, `max_time`) is spent")
    baseline: Name | None = key(None, "the target every other one is compared with: in the headline, by `repeat: "
                                "auto` and by `fusebench compare`", shown="the first native target, else the first")
    threshold: float = key(0.05, "the smallest change that matters: a comparison is decided faster or slower when "
                           "its 95% interval lies beyond it, equivalent when within it", gt=0, lt=1)
    max_repeat: int = key(20, "`repeat: auto`: at most this many repetitions", ge=AUTO_MIN_REPEAT, le=1000)
    max_time: Duration | None = key(None, "`repeat: auto`: no repetition starts once this much time has passed",
                                    shown="none", gt=0)
    seed: Seed | None = key(None, "seed of the target order (0 to 2^64 - 1); recorded in the manifest", shown="random")
    sample_hz: float = key(10.0, "monitor sampling rate (samples per second, up to 1000)", shown="`10`", gt=0, le=1000)
    workdir: Path | None = key(None, "where data files and mountpoints go (`--workdir` overrides): a directory "
                               "fusebench made, or an empty or new one; never a system directory",
                               shown="`/var/tmp/fusebench/<name>`")
    targets: list[Target] = key(..., "list of targets (at least one; names unique)", min_length=1)
    defaults: WorkloadDefaults | None = key(None, "workload keys every entry of `workloads` starts from (any "
                                            "workload key but `name`; a workload's own keys win)", shown="none")
    workloads: list[Workload] = key([], "fio workloads: block I/O, small files, mmap, metadata engines (below)")
    opens: list[Opens] = key([], "open/close loops (below)")
    programs: list[ProgramEntry] = key([], "real programs from the catalog (below)")
    fd_pressure: FdPressure | None = key(None, "fd-limit experiments (below)")

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_sweeps(cls, data: Any) -> Any:
        data = with_defaults(data)
        if isinstance(data, dict):
            _count_cells(data.get("workloads"))
        return data

    @field_validator("workdir")
    @classmethod
    def _not_a_system_dir(cls, workdir: Path | None) -> Path | None:
        refusal = workdir and system_dir_refusal(workdir)
        if refusal:
            raise ValueError(refusal)
        return workdir

    @model_validator(mode="after")
    def _names_and_references(self) -> Scenario:
        names = [target.name for target in self.targets]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise LocatedError(("targets", index, "name"), f"two targets are named {name!r}; names must be unique")
        seen: set[str] = set()
        for section in ("workloads", "opens", "programs"):
            for index, item in enumerate(getattr(self, section)):
                if item.name in seen:
                    raise LocatedError((section, index, "name"), f"two workloads are named {item.name!r}; names "
                                       "must be unique across workloads, opens and programs")
                seen.add(item.name)
        for index, program in enumerate(self.programs):
            if program.mutates and program.cache == "warm":
                raise LocatedError(("programs", index, "cache"), f"program {program.program} changes files, so a "
                                   "warm run would start from another state than the measured one; use cache: cold")
        if self.baseline is not None and self.baseline not in names:
            raise LocatedError(("baseline",), f"baseline names target {self.baseline!r}, which is not defined"
                               f"{_did_you_mean(self.baseline, names)}")
        if self.fd_pressure:
            for index, name in enumerate(self.fd_pressure.target_names()):
                if name not in names:
                    raise LocatedError(
                        ("fd_pressure", "targets", index),
                        f"fd_pressure names target {name!r}, which is not defined{_did_you_mean(name, names)}",
                    )
        if not (self.workloads or self.opens or self.programs or self.fd_pressure):
            raise ValueError("a scenario needs workloads, opens, programs or fd_pressure")
        refusal = self.too_many_runs(self.max_repeat if self.repeat == "auto" else self.repeat)
        if refusal:
            raise LocatedError(("max_repeat" if self.repeat == "auto" else "repeat",), refusal)
        return self

    def too_many_runs(self, repetitions: int) -> str | None:
        """Why a plan of `repetitions` of every cell on every target is too large, or None."""
        cells = len(self.cells())
        runs = cells * len(self.targets) * repetitions
        if runs <= MAX_RUNS:
            return None
        return (f"{cells} cells x {len(self.targets)} targets x {repetitions} repetitions = {runs:,} runs, more than "
                f"{MAX_RUNS:,}; run fewer cells or repetitions")

    def cells(self) -> list[Cell]:
        """All cells, in file order: fio workloads (sweeps expanded), then opens, then programs."""
        return [cell for workload in self.workloads for cell in workload.cells()] + [*self.opens, *self.programs]

    def target(self, name: str):
        """The target called `name`."""
        return next(t for t in self.targets if t.name == name)

    def summary(self) -> str:
        """What the scenario runs, in one line: `scenario quick, 6 cells x 3 targets x 3 repetitions = 54 runs`."""
        per_repetition = len(self.cells()) * len(self.targets)
        if self.repeat == "auto":
            repeats = f"{AUTO_MIN_REPEAT} to {self.max_repeat} repetitions (auto)"
            runs = f"{per_repetition * AUTO_MIN_REPEAT} to {per_repetition * self.max_repeat}"
        else:
            repeats, runs = f"{self.repeat} repetitions", f"{per_repetition * self.repeat}"
        return (f"scenario {self.name}, {len(self.cells())} cells x {len(self.targets)} targets x {repeats} = "
                f"{runs} runs" + (", plus fd pressure" if self.fd_pressure else ""))

    def needs_uring(self) -> bool:
        """Whether a target of the scenario needs FUSE over io_uring (the runner turns it on)."""
        return any(needs_uring(target) for target in self.targets)

    def default_workdir(self) -> Path:
        """The workdir unless --workdir says otherwise: `workdir`, else one of the scenario's own."""
        return self.workdir or DEFAULT_WORKDIR_ROOT / self.name

    def baseline_target(self) -> str:
        """The name of the target every other one is compared with."""
        return self.baseline or default_baseline([t.name for t in self.targets], {t.name: t.type for t in self.targets})


def default_baseline(targets: list[str], types: dict[str, str]) -> str:
    """Without a `baseline:` key: the first native target, else the first target."""
    return next((name for name in targets if types.get(name) == "native"), targets[0])


def _did_you_mean(name: str, names: list[str]) -> str:
    hint = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {hint[0]!r}?" if hint else f"; targets are {names}"


# ---------------------------------------------------------------- loading


def _file_loc(error: dict, data: Any) -> tuple | None:
    """The error's location in the file's own keys and indexes, without pydantic's union tags.

    None for an error from a union branch the input did not take: a list value is a sweep, so
    only the list branch's errors matter for it, and only the scalar branch's for a scalar.
    """
    raw = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    raw += getattr(cause, "loc", ())
    loc: tuple = ()
    node = data
    for i, part in enumerate(raw):
        if isinstance(node, dict) and part in node:
            loc, node = loc + (part,), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            loc, node = loc + (part,), node[part]
        elif i == len(raw) - 1 and error["type"] in ("missing", "extra_forbidden"):
            loc += (part,)
        elif isinstance(part, str) and part.startswith("list[") != isinstance(node, list):
            return None
        elif cause is not None and part in getattr(cause, "loc", ()):
            loc += (part,)  # a key left at its default: named, though not in the file
    return loc


def _line_of(loc: tuple, lines: dict[tuple, int]) -> int:
    """The line of the deepest part of `loc` that is written in the file."""
    for depth in range(len(loc), -1, -1):
        if loc[:depth] in lines:
            return lines[loc[:depth]]
    return 1


def _known_keys(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model else []


def _model_at(loc: tuple, data: Any) -> type[BaseModel] | None:
    """The model class that owns the key at `loc` (for did-you-mean hints)."""
    if not loc:
        return Scenario
    head = loc[0]
    if head == "targets" and len(loc) == 2:
        kind = data["targets"][loc[1]].get("type")
        return {"native": NativeTarget, "fuse": FuseTarget, "passthrough": PassthroughTarget, "external": ExternalTarget}.get(kind)
    if head == "workloads":
        return Workload
    if head == "defaults":
        return WorkloadDefaults
    if head == "opens":
        return Opens
    if head == "programs" and len(loc) >= 2:
        entry = CATALOG.get(data["programs"][loc[1]].get("program"))
        return TreeSpec if entry and loc[2:] == ("tree",) else entry if len(loc) == 2 else None
    if head == "fd_pressure":
        return FdPressure
    return None


# fio's long option names, so that `blocksize:` suggests `bs`.
_FIO_SYNONYMS = {"blocksize": "bs", "readwrite": "rw", "filesize": "size", "timeout": "runtime", "io_engine": "ioengine"}


def _describe(error: dict, loc: tuple, data: Any) -> str:
    key = cut(".".join(str(p) for p in loc))
    kind = error["type"]
    if kind == "extra_forbidden":
        unknown = str(loc[-1])
        known = _known_keys(_model_at(loc[:-1], data))
        synonyms = {alias: name for alias, name in _FIO_SYNONYMS.items() if name in known}
        hint = difflib.get_close_matches(unknown, known + list(synonyms), n=1)
        fix = f"did you mean {synonyms.get(hint[0], hint[0])!r}?" if hint else f"known keys: {', '.join(known)}"
        return f"unknown key {shown(unknown)} ({key}); {fix}"
    if kind in ("union_tag_invalid", "union_tag_not_found") and loc[:1] == ("programs",):
        return f"{key}: `program` must name a catalog entry: one of {', '.join(CATALOG)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"{key}: type must be one of native, fuse, passthrough, external"
    if kind == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind.endswith(("_parsing", "_type")):
        message += f" (got {shown(error['input'])})"
    return f"{key}: {message}" if key else message


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text; raise ScenarioError naming `source`, the line and the fix."""
    data, lines = load_document(text, source)
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}:1: a scenario is a mapping with name, targets and workloads")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        # A bad union member makes pydantic try (and report) every alternative; report the first of each location.
        messages = []
        seen_locs: set[tuple] = set()
        merged = with_defaults(data)
        for error in exc.errors(include_url=False):
            loc = _file_loc(error, merged)
            if loc is None:
                continue
            loc, user = _from_defaults(loc, data)
            if loc in seen_locs:
                continue
            seen_locs.add(loc)
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                line = _line_of(loc + ("type",), lines)
            else:
                line = _line_of(loc, lines)
            messages.append((line, f"{source}:{line}: {_describe(error, loc, data)}{user}"))
        printed = [message for _, message in sorted(messages, key=lambda m: m[0])]
        more = [f"... and {len(printed) - MAX_MESSAGES} more"] if len(printed) > MAX_MESSAGES else []
        raise ScenarioError("\n".join(printed[:MAX_MESSAGES] + more)) from None


def _from_defaults(loc: tuple, data: dict) -> tuple[tuple, str]:
    """A workload's error about a key it took from `defaults`: that key's place in the defaults,
    and which workload it was for."""
    defaults = data.get("defaults")
    if loc[:1] == ("workloads",) and len(loc) >= 3 and isinstance(defaults, dict):
        own = data["workloads"][loc[1]]
        if loc[2] not in own and loc[2] in defaults:
            return ("defaults",) + loc[2:], f" (for workload {cut(str(own.get('name', loc[1])))})"
    return loc, ""


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    return parse_scenario(read_scenario_text(Path(path)), str(path))


def scenario_hash(text: str) -> str:
    """A short, stable hash of the scenario text (recorded in the manifest)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
