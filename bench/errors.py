"""Errors that end a command with a message instead of a traceback."""

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class BenchError(Exception):
    """An error with a message for the user and the exit status it deserves."""

    exit_code = EXIT_RUN_FAILED


class InputError(BenchError):
    """Bad input or an unsupported environment: exit 2 with what and how to fix it."""

    exit_code = EXIT_BAD_INPUT
