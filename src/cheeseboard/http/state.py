"""The services one app instance uses, built in the lifespan and reached from requests."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from cheeseboard.services.accounts import AccountService
from cheeseboard.services.auth import AuthService
from cheeseboard.services.changes import ChangeFeed
from cheeseboard.services.errors import NotFound
from cheeseboard.services.files import FileService
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.pages import PageService
from cheeseboard.services.push import PushService
from cheeseboard.services.pypi_json import PypiJsonService
from cheeseboard.services.releases import ReleaseService
from cheeseboard.services.search import SearchService
from cheeseboard.services.tokens import TokenService
from cheeseboard.services.uploads import UploadService
from cheeseboard.settings import Settings
from cheeseboard.store.accounts import IndexRecord
from cheeseboard.store.db import Database


@dataclass(frozen=True, slots=True)
class AppServices:
    settings: Settings
    db: Database
    changes: ChangeFeed
    indexes: IndexRegistry
    pages: PageService
    files: FileService
    pypi_json: PypiJsonService
    auth: AuthService
    accounts: AccountService
    uploads: UploadService
    releases: ReleaseService
    server_uuid: str
    push: PushService
    tokens: TokenService
    search: SearchService


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
