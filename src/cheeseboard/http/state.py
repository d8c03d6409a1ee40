"""How a request reaches its app's services (built by services/container.py in the lifespan)."""

from __future__ import annotations

from starlette.requests import Request

from cheeseboard.services.auth import Identity
from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound
from cheeseboard.services.visibility import index_not_found
from cheeseboard.store.records import IndexRecord

__all__ = ["AppServices", "base_url", "hidden_bases", "index_of", "reader_of", "services"]


def services(request: Request) -> AppServices:
    value: AppServices = request.app.state.services
    return value


def index_of(request: Request) -> IndexRecord:
    """The index named by the path, or NotFound."""
    user, name = request.path_params["user"], request.path_params["index"]
    index = services(request).indexes.get(user, name)
    if index is None:
        raise NotFound(index_not_found(user, name))
    return index


def base_url(request: Request) -> str:
    """Where clients reach the server: ``--outside-url`` if set, else the request's own base."""
    outside = services(request).settings.outside_url
    if outside:
        return outside.rstrip("/") + "/"
    return str(request.base_url)


def reader_of(request: Request) -> Identity | None:
    """Who is reading, as the route's rule identified them (None: anonymous, or a route whose
    rule does not look at credentials)."""
    identity = getattr(request.state, "identity", None)
    return identity if isinstance(identity, Identity) else None


def hidden_bases(request: Request, index: IndexRecord) -> frozenset[str]:
    """The bases of ``index`` the reader may not read: pages leave them out."""
    return services(request).reads.hidden_bases(reader_of(request), index)
