"""`python -m bench.fusefs SOURCE MOUNTPOINT ...`: the command line (generated from
bench.fusefs.options), its checks, then the server."""

from __future__ import annotations

import argparse
import os
import sys

from bench.fusefs.errors import EXIT_FAILED, ServerError, UsageError
from bench.fusefs.mirror import Mirror
from bench.fusefs.options import OPTIONS, Option, Options, validate
from bench.fusefs.server import Server

EXAMPLES = """\
examples:
  python -m bench.fusefs /srv/data /mnt/plain --mode plain --threads 2
  python -m bench.fusefs /srv/data /mnt/pt --mode passthrough --fd-policy close
  fusebench mount /srv/data /mnt/pt --mode passthrough --stats-file /tmp/stats.json

The server runs in the foreground until the mount is unmounted or it gets SIGINT/SIGTERM
(then it unmounts itself).

exit status:
  0    unmounted, or stopped by SIGINT/SIGTERM
  1    the source or /dev/fuse failed under it
  2    bad options, or the mount cannot be made as asked"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print usage)
        raise UsageError(message)


def _argparse_type(option: Option):
    def parse(text: str):
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    parse.__name__ = option.type.__name__  # what argparse names in "invalid ... value"
    return parse


PROG = "python -m bench.fusefs"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line of the built-in server: one flag per option of OPTIONS (`prog`: the name
    it was started by, for its usage and help)."""
    ap = _Parser(prog=prog, description="Mirror SOURCE at MOUNTPOINT over FUSE with fusebench's built-in server.",
                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="the directory to mirror (absolute path)")
    ap.add_argument("mountpoint", help="where to mount it (absolute path)")
    for option in OPTIONS:
        shown = option.shown_default or option.default
        help_text = f"{option.help} (default: {shown})" if shown is not None else option.help
        if option.type is bool:
            ap.add_argument(option.flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            ap.add_argument(option.flag, type=_argparse_type(option), choices=option.choices or None,
                            default=argparse.SUPPRESS, help=help_text,
                            metavar=None if option.choices else option.name.upper())
    return ap


def parse_options(argv: list[str], prog: str = PROG) -> Options:
    """Validated options, or UsageError with a one-line reason."""
    given = vars(build_parser(prog).parse_args(argv))
    source, mountpoint = given.pop("source"), given.pop("mountpoint")
    for name, path in (("source", source), ("mountpoint", mountpoint)):
        if not os.path.isabs(path):
            raise UsageError(f"{name} must be an absolute path: {path}")
        if not os.path.isdir(path):
            raise UsageError(f"{name} is not a directory: {path}")
    problems = validate(given)
    if problems:
        raise UsageError(problems[0])
    if given.get("mode") == "passthrough" and os.geteuid() != 0:
        raise UsageError("passthrough needs root (FUSE_DEV_IOC_BACKING_OPEN requires CAP_SYS_ADMIN)")
    return Options(source=os.path.realpath(source), mountpoint=os.path.realpath(mountpoint), **given)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Run the server in the foreground; 0 when unmounted or signalled, 2 for bad input or a refused mount."""
    try:
        opts = parse_options(sys.argv[1:] if argv is None else argv, prog)
        return Server(Mirror(opts), opts).run()
    except ServerError as exc:
        print(f"fusefs: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the source or the device failed under us
        print(f"fusefs: {exc}", file=sys.stderr)
        return EXIT_FAILED
