"""The commands a scenario would start as root, listed for a reader before anything runs
(`fusebench validate`, `run --dry-run`): external servers' argv as they will be started (and
asked for their version), the built-in server's settings, the catalog programs' command lines."""

from __future__ import annotations

import shlex
from pathlib import Path

from bench.scenario import (
    ExternalTarget,
    NativeTarget,
    Scenario,
    describe_target,
    load_scenario,
)
from bench.system import ENABLE_URING
from bench.workspace import SCRATCH, SOURCE, target_mountpoint


def version_argv(program: str) -> list[str]:
    """How an external server is asked for its version (recorded in the manifest)."""
    return [program, "--version"]


def validation(path: Path) -> list[str]:
    """What `fusebench validate` says of a valid scenario file: what it runs and the commands
    it starts as root (with its default workdir); a ScenarioError for an invalid one."""
    scenario = load_scenario(path)
    workdir = scenario.default_workdir()
    return [f"{path}: ok: {scenario.summary()}", f"  commands it starts as root (workdir {workdir}):",
            *(f"    {line}" for line in root_commands(scenario, workdir))]


def root_commands(scenario: Scenario, workdir: Path) -> list[str]:
    """One line per command the scenario starts as root, with its paths under `workdir`."""
    workdir = workdir.absolute()
    source = workdir / SOURCE
    lines = []
    for target in scenario.targets:
        if isinstance(target, ExternalTarget):
            argv = target.argv(source, target_mountpoint(workdir, target.name))
            lines.append(f"target {target.name}: {shlex.join(version_argv(argv[0]))}")
            lines.append(f"target {target.name}: {shlex.join(argv)}")
        elif not isinstance(target, NativeTarget):
            lines.append(f"target {target.name}: {describe_target(target)}")
    views = ", ".join([str(source)] + [str(target_mountpoint(workdir, t.name)) for t in scenario.targets
                                       if not isinstance(t, NativeTarget)])
    for program in scenario.programs:
        command = program.command(source, workdir / SCRATCH)
        lines.append(f"program {program.name}: {shlex.join(command.argv)}")
    if scenario.programs:
        lines.append(f"  (programs run on each target's view: {views})")
    if scenario.needs_uring():
        lines.append(f"FUSE over io_uring: {ENABLE_URING} set to Y for the run, its earlier value put back after")
    if scenario.workloads or scenario.opens or scenario.fd_pressure:
        lines.append("fio and fusebench's own clients (open/close loops, fd pressure), with arguments built from "
                     "the workload keys")
    return lines
