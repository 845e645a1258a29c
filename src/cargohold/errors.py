"""Error categories.

Every failure the engine reports is one of these categories.  Only ``cli/output.py`` maps
them to process exit codes and only the API layer maps them to HTTP status, so the wording
stays Docker's ("No such container: x") in both places.
"""

from __future__ import annotations


class CargoholdError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code: int = 125
    http_status: int = 500
    from_daemon: bool = True  # Docker prefixes these with "Error response from daemon: "

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(CargoholdError):
    http_status = 404


class Conflict(CargoholdError):
    http_status = 409


class InvalidArgument(CargoholdError):
    http_status = 400


class ClientError(InvalidArgument):
    """Bad input caught by the client itself (templates, flags): no daemon prefix."""

    from_daemon = False


class Unavailable(CargoholdError):
    http_status = 503


class Forbidden(CargoholdError):
    http_status = 403


class NotImplementedFeature(CargoholdError):
    http_status = 501


class Internal(CargoholdError):
    http_status = 500


class CannotExecute(CargoholdError):
    """The container command exists but cannot be executed (Docker's 126)."""

    exit_code = 126
    http_status = 400


class CommandNotFound(CargoholdError):
    """The container command was not found (Docker's 127)."""

    exit_code = 127
    http_status = 400


class ContainerExit(CargoholdError):
    """Not an error of the engine: carries the container's own exit status to the CLI."""

    def __init__(self, code: int) -> None:
        super().__init__(f"container exited with {code}")
        self.exit_code = code
