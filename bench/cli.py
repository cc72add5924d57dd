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
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, BenchError, InputError
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
    scenario = _require("bench.scenario", "validate").load_scenario(args.scenario)
    print(f"{args.scenario}: ok: {scenario.summary()}")
    return 0


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
    return _require("bench.fusefs.cli", "mount").main(server_args)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (README documents it)."""
    parser = argparse.ArgumentParser(
        prog="fusebench", description="Measure what Linux FUSE passthrough buys and what it costs."
    )
    parser.add_argument("--version", action="version", version=f"fusebench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = commands.add_parser("doctor", help="what this machine supports, and how to fix what it does not")
    doctor.set_defaults(func=_doctor)

    validate = commands.add_parser("validate", help="check a scenario file (exit 2 with file:line: message)")
    validate.add_argument("scenario", type=Path, metavar="SCENARIO.yaml")
    validate.set_defaults(func=_validate)

    run = commands.add_parser("run", help="run a scenario into a results folder")
    run.add_argument("scenario", type=Path, metavar="SCENARIO.yaml")
    run.add_argument("--out", type=Path, help="results folder (default: results/NAME-TIMESTAMP)")
    run.add_argument("--repeat", type=repetitions, metavar="N|auto",
                     help="repetitions per cell, or auto (overrides the scenario's repeat)")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="complete an interrupted results folder (--out)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and its estimated duration; run nothing")
    existing.add_argument("--force", action="store_true", help="replace an existing results folder")
    run.add_argument("--seed", type=int, help="seed of the target order (default: the scenario's, else random)")
    run.add_argument(
        "--workdir", type=Path, help="where data files and mountpoints go (default: /var/tmp/fusebench/NAME)"
    )
    run.set_defaults(func=_run)

    report = commands.add_parser(
        "report", help="summarise a results folder; bundle it to publish; or index several in a site",
        epilog="examples:\n  fusebench report results/quick                        # reports/quick.html\n"
               "  fusebench report results/quick --format text --width 72   # for a mail, on stdout\n"
               "  fusebench report results/quick --format json -o quick.json\n"
               "  fusebench report results/quick --bundle quick.tar.gz\n"
               "  fusebench report results/a results/b -o site              # site/index.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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

    compare = commands.add_parser(
        "compare",
        help="compare results folders with a base one (kernels, server versions, machines)",
        description="Every OTHER folder against BASE, per common cell and target: throughput or ops/s, latency "
                    "p50/p99/p99.9, CPU seconds per GiB and per 1,000 operations, FUSE requests per GiB, each as a "
                    "change with its interval and verdict; a summary per folder; pairs some folders lack; "
                    "environment differences.",
        epilog="examples:\n  fusebench compare results/v6.17 results/v6.18          # reports/v6.17-vs-v6.18.html\n"
               "  fusebench compare results/a results/b results/c --format text --width 72\n"
               "  fusebench compare results/a results/b --format json -o - | jq .summary",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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


def _guarded(command: Callable[[], int]) -> int:
    try:
        return command()
    except BenchError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"fusebench: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # Whatever was mounted came down in the context managers the interrupt unwound.
        print("fusebench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`); keep Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
