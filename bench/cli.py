"""`fusebench` command line: parse arguments, call the core, return an exit status.

Every subcommand imports what it needs when it runs, so a module that is missing or
broken only disables its own command, with a message instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from bench import __version__
from bench.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BenchError,
    InputError,
)
from bench.report import FORMATS  # cheap: the writers are imported when used


def repetitions(text: str) -> int | str:
    """A whole number >= 1, or `auto` (argparse type of --repeat)."""
    return "auto" if text == "auto" else positive_int(text)


def positive_int(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def seed(text: str) -> int:
    """A seed, 0 to 2**64 - 1 (argparse type of --seed)."""
    from bench.fields import SEED_LIMIT

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is not a seed: give a whole number from 0 to 2**64 - 1")
    return value


def _require(module: str, command: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"`fusebench {command}` is not available: {module} cannot be imported ({exc}); "
            "reinstall with `make setup`, or update the checkout"
        ) from None


def _host(command: str):
    return _require("bench.host", command).Host()


def _doctor(args: argparse.Namespace) -> int:
    return _require("bench.doctor", "doctor").run_doctor(_host("doctor"))


def _validate(args: argparse.Namespace) -> int:
    commands = _require("bench.commands", "validate")
    status = 0
    for path in args.scenarios:
        try:
            print("\n".join(commands.validation(path)), flush=True)
        except BenchError as exc:
            _print_error(exc)
            status = max(status, exc.exit_code)
    return status


def _run(args: argparse.Namespace) -> int:
    runner = _require("bench.runner", "run")
    options = runner.RunOptions(
        scenario_path=args.scenario,
        out=args.out,
        repeat=args.repeat,
        resume=args.resume,
        dry_run=args.dry_run,
        force=args.force,
        seed=args.seed,
        workdir=args.workdir,
    )
    return runner.run(options, _host("run"))


def _report(args: argparse.Namespace) -> int:
    report = _require("bench.report", "report")
    written = report.report_command(args.results, args.output, args.format, args.width, args.bundle)
    if written is not None:
        print(f"wrote {written}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    report = _require("bench.report", "compare")
    written = report.write_comparison(args.base, args.others, args.output, args.format, args.width)
    if written is not None:
        print(f"wrote {written}")
    return 0


def _mount(server_args: list[str]) -> int:
    return _require("bench.fusefs.cli", "mount").main(server_args, prog="fusebench mount")


# What each exit status means for every command (bench.errors defines the numbers).
EXIT_MEANINGS = {
    "doctor": {EXIT_OK: "the default scenario can run here", EXIT_BAD_INPUT: "something it needs is missing"},
    "validate": {EXIT_OK: "every file is a valid scenario", EXIT_BAD_INPUT: "a file is not (file:line: message)"},
    "run": {EXIT_OK: "every run ok (or the --dry-run plan)", EXIT_FAILED: "some run failed (runs.csv says why)",
            EXIT_BAD_INPUT: "bad input, or it cannot run here", EXIT_INTERRUPTED: "interrupted (--resume goes on)"},
    "report": {EXIT_OK: "written", EXIT_BAD_INPUT: "not a results folder, or options that do not go together"},
    "compare": {EXIT_OK: "written", EXIT_BAD_INPUT: "not a results folder, or options that do not go together"},
}


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; epilogs (examples, exit statuses) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _command(commands, name: str, summary: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand whose --help has its description, examples and exit statuses."""
    exits = [f"  {status:<4} {meaning}" for status, meaning in EXIT_MEANINGS[name].items()]
    return commands.add_parser(name, help=summary, description=description,
                               epilog="\n".join(["examples:", *(f"  {line}" for line in examples), "",
                                                 "exit status:", *exits]),
                               formatter_class=_Formatter)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (README documents it)."""
    parser = argparse.ArgumentParser(
        prog="fusebench", description="Measure what Linux FUSE passthrough buys and what it costs."
    )
    parser.add_argument("--version", action="version", version=f"fusebench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = _command(commands, "doctor", "what this machine supports, and how to fix what it does not",
                      "Check fio, /dev/fuse, root, the kernel and its FUSE passthrough (live), the tracepoint, "
                      "bindfs and the catalog's programs; one line each, with the fix for what is missing.",
                      ["fusebench doctor", "fusebench doctor | grep -v '^ok'"])
    doctor.set_defaults(func=_doctor)

    validate = _command(commands, "validate", "check scenario files (exit 2 with file:line: message)",
                        "Check each scenario file: `FILE: ok:` with the runs it plans and every command it would "
                        "start as root (external servers' argv filled in, the built-in server, catalog programs), "
                        "or its errors as `FILE:LINE: message` with the fix.",
                        ["fusebench validate scenarios/quick.yaml", "fusebench validate scenarios/*.yaml"])
    validate.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO.yaml")
    validate.set_defaults(func=_validate)

    run = _command(commands, "run", "run a scenario into a results folder",
                   "Run every workload of SCENARIO.yaml on every target, repetitions in rotated target order, into "
                   "a results folder (runs.csv, samples.csv, fio's outputs and logs, manifest.json). Progress goes "
                   "to stdout at a terminal, else to stderr.",
                   ["fusebench run scenarios/quick.yaml", "fusebench run scenarios/perf.yaml --repeat auto",
                    "fusebench run scenarios/quick.yaml --dry-run",
                    "fusebench run results/quick/scenario.yaml --out results/quick --resume"])
    run.add_argument("scenario", type=Path, metavar="SCENARIO.yaml")
    run.add_argument("--out", type=Path, help="results folder (default: results/NAME-TIMESTAMP)")
    run.add_argument("--repeat", type=repetitions, metavar="N|auto",
                     help="repetitions per cell, or auto (overrides the scenario's repeat)")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="complete an interrupted results folder (--out)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and its estimated duration; run nothing")
    existing.add_argument("--force", action="store_true", help="replace an existing results folder")
    run.add_argument("--seed", type=seed, help="seed of the target order (default: the scenario's, else random)")
    run.add_argument(
        "--workdir", type=Path, help="where data files and mountpoints go (default: /var/tmp/fusebench/NAME)"
    )
    run.set_defaults(func=_run)

    report = _command(
        commands, "report", "summarise a results folder; bundle it to publish; or index several in a site",
        "The statistics of one results folder (medians with their intervals, every target against the "
        "baseline and passthrough against plain FUSE, latency, CPU cost, FUSE requests, fd pressure) in one "
        "format; or a bundle of the folder with every report; or, for several folders, a site of their "
        "HTML reports and an index.",
        ["fusebench report results/quick                          # reports/quick.html",
         "fusebench report results/quick --format text --width 72  # for a mail, on stdout",
         "fusebench report results/quick --format json -o quick.json",
         "fusebench report results/quick --bundle quick.tar.gz",
         "fusebench report results/a results/b -o site             # site/index.html"])
    report.add_argument("results", type=Path, nargs="+", metavar="RESULTS_DIR")
    report.add_argument(
        "-o", "--output", type=Path,
        help="output file, - for stdout (default: text, markdown and json to stdout, html and csv to "
             "reports/NAME.EXT); with several folders, the site's folder",
    )
    report.add_argument("--format", choices=FORMATS, help="default: html")
    report.add_argument("--bundle", type=Path, metavar="OUT",
                        help="write a bundle to publish (OUT.tar.gz, or a new folder): the results folder, every "
                             "report and a README")
    report.add_argument("--width", type=positive_int, metavar="N",
                        help="text: lines of at most N columns (default 80; 72 for a mail); markdown: prose wrapped at N, "
                             "tables kept whole")
    report.set_defaults(func=_report)

    compare = _command(
        commands, "compare", "compare results folders with a base one (kernels, server versions, machines)",
        "Every OTHER folder against BASE, the first folder given: per cell and target both have, throughput "
        "or ops/s, latency p50/p99/p99.9, CPU seconds per GiB and per 1,000 operations and FUSE requests per "
        "GiB, each as a change of OTHER against BASE with its interval and verdict (+ is always better); a "
        "summary per folder; pairs some folders lack or that cannot be compared; environment differences.",
        ["fusebench compare results/v6.17 results/v6.18          # reports/v6.17-vs-v6.18.html",
         "fusebench compare results/a results/b results/c --format text --width 72",
         "fusebench compare results/a results/b --format json -o - | jq .summary"])
    compare.add_argument("base", type=Path, metavar="BASE")
    compare.add_argument("others", type=Path, nargs="+", metavar="OTHER")
    compare.add_argument("-o", "--output", type=Path,
                         help="output file, - for stdout (default: text, markdown and json to stdout, html and csv "
                              "to reports/BASE-vs-OTHER.EXT)")
    compare.add_argument("--format", choices=FORMATS, default="html")
    compare.add_argument("--width", type=positive_int, metavar="N",
                         help="text: lines of at most N columns (default 80; 72 for a mail); markdown: prose wrapped at N, "
                             "tables kept whole")
    compare.set_defaults(func=_compare)

    mount = commands.add_parser(
        "mount",
        add_help=False,
        help="mount SRC at MNT with the built-in server (foreground; `fusebench mount --help` for options)",
    )
    # Listed for --help only: main() hands everything after `mount` to the server's own parser.
    mount.add_argument("server_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; never a traceback for an expected error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mount"]:
        return _guarded(lambda: _mount(argv[1:]))
    args = build_parser().parse_args(argv)
    return _guarded(lambda: args.func(args))


def _print_error(exc: BenchError) -> None:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"fusebench: error: {line}", file=sys.stderr, flush=True)


def _guarded(command: Callable[[], int]) -> int:
    try:
        return command()
    except BenchError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        # Whatever was mounted came down in the context managers the interrupt unwound.
        print("fusebench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`); keep Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
