"""Release files and their ``.metadata`` at devpi's paths (``+f/<h3>/<h13>/<name>``, ``+e/…``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cheeseboard.core import metrics
from cheeseboard.http import toxresults as toxresult_http
from cheeseboard.http.access import READ, GuardedRoute
from cheeseboard.http.responses import BlobResponse, FollowResponse
from cheeseboard.http.state import index_of, services
from cheeseboard.services.errors import NotFound
from cheeseboard.services.files import PendingFile
from cheeseboard.services.toxresults import is_toxresult_name
from cheeseboard.store.records import FileRecord

_METADATA = ".metadata"


async def _record(request: Request, filename: str) -> FileRecord:
    index = index_of(request)
    record, project = await services(request).files.lookup_entry(index, filename)
    if "h3" in request.path_params:
        # Exactly the page's +f/<sha256[:3]>/<sha256[3:16]>/, not any split of a prefix of it.
        h3, h13 = request.path_params["h3"], request.path_params["h13"]
        digest = record.sha256 or ""
        if not digest or (h3, h13) != (digest[:3], digest[3:16]):
            raise NotFound(f"no file {filename!r} under +f/{h3[:16]}/{h13[:16]}")
    services(request).project_status.check_download(index, record)
    services(request).guard.check_download(index, record, project)
    return record


async def hashed_file(request: Request) -> Response:
    filename: str = request.path_params["filename"]
    if is_toxresult_name(filename):
        return await toxresult_http.result(request)  # devpi test's results, next to the file
    if filename.endswith(_METADATA):
        return await _metadata(request, filename[: -len(_METADATA)])
    return await _file(request, filename)


async def _file(request: Request, filename: str) -> Response:
    index = index_of(request)
    record = await _record(request, filename)
    app = services(request)
    redirect = app.files.redirect_url(record)
    if redirect is not None:
        # --blob-redirect: the client fetches the bytes from the bucket itself.
        metrics.count("file_cache_hits_total")  # the bucket holds it
        return RedirectResponse(redirect, status_code=302, headers={"Cache-Control": "no-store"})
    opened = await app.files.open(index, record)
    metrics.count(
        "file_cache_misses_total" if isinstance(opened, PendingFile) else "file_cache_hits_total"
    )
    if isinstance(opened, PendingFile):
        download = opened.download
        if "range" not in request.headers:
            return FollowResponse(request, download.chunks(), download.size, record.sha256)
        # Ranges are answered from the stored file once it is complete and verified.
        opened = await opened.complete()
    return BlobResponse(request, opened.path, opened.sha256, opened.size)


async def _metadata(request: Request, filename: str) -> Response:
    index = index_of(request)
    record = await _record(request, filename)
    path = await services(request).files.core_metadata(index, record)
    sha256 = path.name
    return BlobResponse(request, path, sha256, path.stat().st_size)


routes = [
    GuardedRoute("/{user}/{index}/+f/{h3}/{h13}/{filename}", hashed_file, GET=READ),
    GuardedRoute("/{user}/{index}/+e/{where}/{filename}", hashed_file, GET=READ),
]
