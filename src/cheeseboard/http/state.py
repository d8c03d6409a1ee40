"""How a request reaches its app's services (built by services/container.py in the lifespan)."""

from __future__ import annotations

from starlette.requests import Request

from cheeseboard.services.container import AppServices
from cheeseboard.services.errors import NotFound
from cheeseboard.store.records import IndexRecord

__all__ = ["AppServices", "base_url", "index_of", "services"]


def services(request: Request) -> AppServices:
    value: AppServices = request.app.state.services
    return value


def index_of(request: Request) -> IndexRecord:
    """The index named by the path, or NotFound."""
    user, name = request.path_params["user"], request.path_params["index"]
    index = services(request).indexes.get(user, name)
    if index is None:
        raise NotFound(f"no index {user}/{name}")
    return index


def base_url(request: Request) -> str:
    """Where clients reach the server: ``--outside-url`` if set, else the request's own base."""
    outside = services(request).settings.outside_url
    if outside:
        return outside.rstrip("/") + "/"
    return str(request.base_url)
