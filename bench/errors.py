"""Errors that end a command with a message instead of a traceback, and the exit statuses
(0 ok, 1 a run failed, 2 bad input; shared with the built-in server) plus 130 for Ctrl-C."""

from pydantic import ValidationError

from bench.fusefs.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "BenchError", "InputError", "first_problem"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class BenchError(Exception):
    """An error with a message for the user and the exit status it deserves."""

    exit_code = EXIT_FAILED


class InputError(BenchError):
    """Bad input or an unsupported environment: exit 2 with what and how to fix it."""

    exit_code = EXIT_BAD_INPUT


def first_problem(exc: ValidationError) -> str:
    """The first thing wrong with a document a model refused: `where.in.it: what`."""
    first = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
