"""Domain errors shared by services; the HTTP layer maps each to a status code in one place."""

from __future__ import annotations


class CheeseboardError(Exception):
    """Base of every error a request can end in; ``message`` is safe to show to the client."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CheeseboardError):
    """Raised when an index, project or file does not exist (or upstream says so)."""

    status = 404


class BadRequest(CheeseboardError):
    """Raised for malformed input: invalid names, filenames, parameters."""

    status = 400


class UpstreamFailed(CheeseboardError):
    """Raised when upstream is unreachable or broken and nothing usable is cached."""

    status = 502


class NotAcceptable(CheeseboardError):
    """Raised when content negotiation finds no representation the client accepts."""

    status = 406
