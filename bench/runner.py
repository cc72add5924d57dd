"""`fusebench run`: read the scenario, check a resume and the workdir, plan, and either
describe the plan and the commands it starts as root (--dry-run) or hand it to a Session on
the given Host.

The results folder and the session load pandas and scipy (about a second): they are imported
once the scenario is accepted, so that bad input is refused at once.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.commands import root_commands
from bench.errors import EXIT_OK, InputError
from bench.host import Host
from bench.plan import describe_plan, make_plan
from bench.scenario import Scenario, parse_scenario, scenario_hash
from bench.scenario_file import read_scenario_text
from bench.workspace import check_workdir

if TYPE_CHECKING:
    from bench.records import Manifest


@dataclass(frozen=True)
class RunOptions:
    """What `fusebench run` was asked to do."""

    scenario_path: Path
    out: Path | None = None
    repeat: int | str | None = None  # a count, or "auto"
    resume: bool = False
    dry_run: bool = False
    force: bool = False
    seed: int | None = None
    workdir: Path | None = None


def default_out(scenario: Scenario, now: datetime) -> Path:
    """results/<scenario>-<UTC timestamp>: a new folder per run unless --out says otherwise."""
    return Path("results") / f"{scenario.name}-{now:%Y%m%dT%H%M%SZ}"


def run(options: RunOptions, host: Host | None = None) -> int:
    """Execute (or with dry_run, describe) a scenario; the exit status of `fusebench run`."""
    host = host or Host()
    if options.resume and options.out is None:
        raise InputError("--resume needs --out: the results folder to complete")
    text = read_scenario_text(options.scenario_path)
    scenario = parse_scenario(text, str(options.scenario_path))
    out = options.out or default_out(scenario, host.now())
    previous = _previous_manifest(out) if options.resume else None
    if previous:
        _check_resumable(previous, scenario_hash(text), options)
        seed, repeat = previous.seed, "auto" if previous.auto else previous.repeat
    else:
        seed = next(s for s in (options.seed, scenario.seed, secrets.randbelow(2**32)) if s is not None)
        repeat = options.repeat or scenario.repeat
        refusal = isinstance(options.repeat, int) and scenario.too_many_runs(options.repeat)
        if refusal:
            raise InputError(f"--repeat {options.repeat}: {refusal}")
    plan = make_plan(scenario, repeat, seed)
    recorded = Path(previous.workdir) if previous else None  # a resumed run reuses its data files
    workdir = check_workdir(options.workdir or recorded or scenario.default_workdir())
    if options.dry_run:
        commands = [f"commands it starts as root (workdir {workdir}):",
                    *(f"  {line}" for line in root_commands(scenario, workdir))]
        for line in describe_plan(plan, scenario, commands):
            host.output(line)
        for target in scenario.targets:
            reason = host.target_unavailable_reason(target)
            if reason:
                host.output(f"{target.name}: would be skipped here: {reason}")
        return EXIT_OK
    from bench.session import Session

    return Session(host, scenario, text, plan, out, workdir, previous, options.force).execute()


def _previous_manifest(out: Path) -> Manifest:
    from bench.results import MANIFEST, ResultsFolder

    if not os.path.lexists(out / MANIFEST):
        raise InputError(f"{out} is not a results folder: {MANIFEST} is missing; --resume completes a folder "
                         "that an earlier `fusebench run --out` wrote")
    return ResultsFolder(out).manifest(required=True)


def _check_resumable(manifest: Manifest, digest: str, options: RunOptions) -> None:
    if manifest.scenario_hash != digest:
        raise InputError(
            f"{options.scenario_path} changed since {options.out} was started (hash {digest} != "
            f"{manifest.scenario_hash}); resume with the scenario.yaml kept in that folder, or start a new --out"
        )
    if manifest.auto and options.repeat is not None:
        raise InputError(f"{options.out} was started with repeat: auto; drop --repeat to resume it")
    for flag, asked, recorded in (
        ("--repeat", options.repeat, None if manifest.auto else manifest.repeat),
        ("--seed", options.seed, manifest.seed),
    ):
        if asked is not None and asked != recorded:
            raise InputError(
                f"{flag} {asked} differs from the {recorded} that {options.out} was started with; drop {flag} to resume"
            )
