"""Domain errors shared by services. They carry no HTTP status: http/errors.py maps each class to
one, in one table."""

from __future__ import annotations

# A failing blob store (store/blobs.py) ends a request too; the delivery layer gets these
# from here, as it imports nothing from store/ but the record types.
from cheeseboard.store.blobs import BlobMissing as BlobMissing
from cheeseboard.store.blobs import BlobStoreError as BlobStoreError
from cheeseboard.store.blobs import BlobStoreUnavailable as BlobStoreUnavailable


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


class Withheld(CheeseboardError):
    """Raised for a file the supply-chain guard holds back or blocks (services/guard.py); the
    message says why and, for a cooldown, from when it is available."""


class NotAcceptable(CheeseboardError):
    """Raised when content negotiation finds no representation the client accepts."""
