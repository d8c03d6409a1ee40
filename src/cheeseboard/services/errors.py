"""Domain errors shared by services. They carry no HTTP status: http/errors.py maps each class to
one, in one table."""

from __future__ import annotations


class CheeseboardError(Exception):
    """Base of every error a request can end in; ``message`` is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CheeseboardError):
    """Raised when an index, project or file does not exist (or upstream says so)."""


class BadRequest(CheeseboardError):
    """Raised for malformed input: invalid names, filenames, parameters."""


class UpstreamFailed(CheeseboardError):
    """Raised when upstream is unreachable or broken and nothing usable is cached."""


class NotAcceptable(CheeseboardError):
    """Raised when content negotiation finds no representation the client accepts."""
