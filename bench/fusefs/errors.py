"""Exit statuses (fusebench uses the same ones) and the errors that end the server with a message."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class ServerError(Exception):
    """An error with a one-line message for the user and the exit status it deserves."""

    exit_code = EXIT_FAILED


class UsageError(ServerError):
    """An option that cannot be used as given (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class MountError(ServerError):
    """The mount could not be made as asked (exit 2, one line)."""

    exit_code = EXIT_BAD_INPUT
