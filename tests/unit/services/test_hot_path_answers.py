"""http/hot.py answers cached pages and stored files exactly as the routes do.

A differential test: each request goes to ``HotPath.answer`` and, separately, through the whole
app (routing, middlewares, handlers) over the same real services; status, every header and the
body (or the file path handed to ``pathsend``) must be equal. Requests the hot path must leave to
the app (it could not answer them identically) are checked to fall through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message

from cheeseboard.http.app import create_app
from cheeseboard.http.hot import HotPath
from cheeseboard.mirror import client as client_module
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.services.container import AppServices
from cheeseboard.services.quiet import Quiet
from cheeseboard.settings import Settings
from cheeseboard.store.records import IndexRecord
from tests.support.packages import Dist, build_wheel
from tests.unit.services.support import mirror, stage, upload

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
HEADER_SETS: list[dict[str, str]] = [
    {"accept": PIP_ACCEPT, "accept-encoding": "gzip, deflate"},
    {"accept": PIP_ACCEPT},
    {"accept": "application/vnd.pypi.simple.v1+html", "accept-encoding": "gzip;q=0"},
    {"accept": "text/html", "accept-encoding": "br, *;q=0.5"},
    {"accept-encoding": "identity"},
    {"accept": "application/vnd.pypi.simple.latest+json, */*;q=0.1"},
]


def _scope(path: str, headers: dict[str, str], method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "server": ("127.0.0.1", 3141),
        "client": ("127.0.0.1", 40000),
        "extensions": {"http.response.pathsend": {}},
    }


async def _through_app(hot: HotPath, scope: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await hot.app(dict(scope), receive, send)
    start = messages[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    rest = messages[1:]
    if rest and rest[0]["type"] == "http.response.pathsend":
        return start["status"], headers, _bytes_of(("path", rest[0]["path"]))
    return start["status"], headers, b"".join(m.get("body", b"") for m in rest)


def _answered(hot: HotPath, services: AppServices, scope: dict[str, Any]) -> tuple[Any, ...]:
    answer = hot.answer(scope, services)
    assert answer is not None, f"hot path left {scope['method']} {scope['path']} to the app"
    status, head, body, path, length = answer
    headers = {k.decode(): v.decode() for k, v in head}
    assert len(headers) == len(head), "a header sent twice"
    assert length == int(headers.get("content-length", 0)), "the access log's size"
    return status, headers, _bytes_of(("path", path) if path is not None else body)


def _bytes_of(body: Any) -> bytes:
    """A body, or the bytes of the file handed to ``pathsend``: the hot path sends small files
    as a body where the route hands the server the path."""
    if isinstance(body, tuple):
        with open(body[1], "rb") as handle:
            return handle.read()
    assert isinstance(body, bytes)
    return body


async def _same(hot: HotPath, services: AppServices, scope: dict[str, Any]) -> tuple[Any, ...]:
    # Background bookkeeping of a mirror fetch (core metadata recorded, a download's row
    # updated) may drop a row or page from memory once; the app's answer loads it again.
    deadline = time.monotonic() + 10
    while hot.answer(scope, services) is None and time.monotonic() < deadline:
        await _through_app(hot, scope)
        await asyncio.sleep(0.01)
    while True:
        fast = _answered(hot, services, scope)
        slow = await _through_app(hot, scope)
        if fast == slow or time.monotonic() > deadline:
            break
        # A background write came between the two answers (the serial moved, a blob was
        # stored again): compare again, both answers must agree once it is done.
        await asyncio.sleep(0.05)
    assert fast == slow, scope
    return fast


async def _cached_page(services: AppServices, index: IndexRecord, project: str) -> None:
    """Ask for the page until it is served from memory: a mirror fetch goes on in the
    background (core metadata advertised upstream is fetched and recorded), which may replace
    the page once."""
    deadline = time.monotonic() + 10
    while services.pages.peek(index, project) is None:
        assert time.monotonic() < deadline, f"{index.fullname}/{project} never stayed cached"
        await services.pages.project_page(index, project)
        await asyncio.sleep(0.01)


async def _stored(services: AppServices, index: IndexRecord, filename: str) -> None:
    """Wait until the file's row in memory says its bytes are stored (a mirror file's row is
    updated in the background once the download is verified)."""
    deadline = time.monotonic() + 10
    while True:
        record = await services.files.lookup(index, filename)
        if services.files.peek(record) is not None:
            return
        assert time.monotonic() < deadline, f"{filename} never became stored"
        await asyncio.sleep(0.02)


@pytest.fixture
def hot(services: AppServices, settings: Settings) -> HotPath:
    app = create_app(settings)
    app.state.services = services
    return HotPath(app)


async def test_pages_answer_as_the_route_does(
    hot: HotPath, services: AppServices, dists: dict[str, list[Dist]], tmp_path: Path
) -> None:
    dev = await stage(services, bases="root/pypi", allow_upstream_names=True)
    await upload(services, dev, dists["lib-a"][0])
    for minor in range(12):  # a page big enough to be sent gzipped
        await upload(services, dev, build_wheel(tmp_path, "hot-big", f"1.{minor}"))
    pages = ((mirror(services), "lib-c"), (dev, "lib-a"), (dev, "lib-c"), (dev, "hot-big"))
    for index, project in pages:
        await _cached_page(services, index, project)
        path = f"/{index.fullname}/+simple/{project}/"
        seen = set()
        for headers in HEADER_SETS:
            for method in ("GET", "HEAD"):
                status, got, body = await _same(hot, services, _scope(path, headers, method))
                assert status == 200
                assert got["vary"] == "Accept, Accept-Encoding"
                assert (body == b"") == (method == "HEAD")
                seen.add((got["content-type"], got.get("content-encoding")))
            etag = got["etag"]
            for if_none_match in (etag, f"W/{etag}", '"other", ' + etag, "*"):
                status, _, _ = await _same(
                    hot, services, _scope(path, {**headers, "if-none-match": if_none_match})
                )
                assert status == 304
            status, _, _ = await _same(
                hot, services, _scope(path, {**headers, "if-none-match": '"x"'})
            )
            assert status == 200
        assert len(seen) >= 3  # JSON and both HTML representations
        if project == "hot-big":
            assert ("application/vnd.pypi.simple.v1+json", "gzip") in seen


async def test_files_and_metadata_answer_as_the_route_does(
    hot: HotPath, services: AppServices, dists: dict[str, list[Dist]]
) -> None:
    dev = await stage(services, allow_upstream_names=True)
    wheel = dists["lib-a"][0]
    await upload(services, dev, wheel)
    pypi = mirror(services)
    mirrored = dists["lib-c"][0]
    await services.pages.project_page(pypi, "lib-c")
    record = await services.files.lookup(pypi, mirrored.filename)
    await services.files.open_complete(pypi, record)
    await services.files.core_metadata(pypi, record)
    for index, dist in ((dev, wheel), (pypi, mirrored)):
        await _stored(services, index, dist.filename)
        base = f"/{index.fullname}/+f/{dist.sha256[:3]}/{dist.sha256[3:16]}/{dist.filename}"
        for path in (base, base + ".metadata") if dist.kind == "wheel" else (base,):
            status, got, body = await _same(hot, services, _scope(path, {}))
            assert status == 200 and len(body) == int(got["content-length"])
            assert int(got["content-length"]) > 0
            status, _, body = await _same(hot, services, _scope(path, {}, "HEAD"))
            assert status == 200 and body == b""
            status, _, _ = await _same(hot, services, _scope(path, {"if-none-match": got["etag"]}))
            assert status == 304


async def test_what_the_hot_path_leaves_to_the_app(
    hot: HotPath, services: AppServices, dists: dict[str, list[Dist]]
) -> None:
    pypi = mirror(services)
    await _cached_page(services, pypi, "lib-c")
    page = "/root/pypi/+simple/lib-c/"
    assert hot.answer(_scope(page, {}), services) is not None
    wheel = dists["lib-c"][0]
    file = f"/root/pypi/+f/{wheel.sha256[:3]}/{wheel.sha256[3:16]}/{wheel.filename}"
    record = await services.files.lookup(pypi, wheel.filename)
    await services.files.open_complete(pypi, record)
    await _stored(services, pypi, wheel.filename)
    assert hot.answer(_scope(file, {}), services) is not None
    sdist = dists["lib-c"][1]
    assert sdist.kind == "sdist"
    await services.files.lookup(pypi, sdist.filename)
    sdist_file = f"/root/pypi/+f/{sdist.sha256[:3]}/{sdist.sha256[3:16]}/{sdist.filename}"
    left = [
        _scope(page, {"if-modified-since": "Mon, 07 Dec 2026 05:00:00 GMT"}),
        _scope(page, {"accept": "application/json"}),  # 406 with a reason
        {**_scope(page, {}), "query_string": b"format=json"},
        {**_scope(page, {}), "method": "POST"},
        _scope("/root/pypi/+simple/Lib_C/", {}),  # redirected to the normal form
        _scope("/root/pypi/+simple/lib-a/", {}),  # not cached yet
        _scope("/root/nope/+simple/lib-c/", {}),
        _scope("/root/pypi/+simple/", {}),
        _scope(file, {"range": "bytes=0-10"}),
        _scope(file, {"if-range": '"x"'}),
        _scope(file.replace(wheel.sha256[:3], "000"), {}),  # 404: not the file's hash
        _scope(sdist_file + ".metadata", {}),  # 404: an sdist has no .metadata
    ]
    for scope in left:
        assert hot.answer(scope, services) is None, scope


async def test_an_expired_mirror_page_is_left_to_the_app(
    expiring_services: AppServices, settings: Settings
) -> None:
    app = create_app(settings)
    app.state.services = expiring_services
    hot = HotPath(app)
    pypi = mirror(expiring_services)
    await _cached_page(expiring_services, pypi, "lib-c")
    scope = _scope("/root/pypi/+simple/lib-c/", {})
    assert hot.answer(scope, expiring_services) is not None
    time.sleep(0.3)  # past EXPIRY: the route must ask upstream again
    assert hot.answer(scope, expiring_services) is None


async def test_answers_of_the_hot_path_are_logged(
    services: AppServices, settings: Settings
) -> None:
    """The hot path writes the access log line the access log middleware would have."""
    app = create_app(settings)
    app.state.services = services
    logged: list[tuple[str, int, int]] = []
    hot = HotPath(
        app, app, lambda scope, status, size, _: logged.append((scope["path"], status, size))
    )
    await _cached_page(services, mirror(services), "lib-c")
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await hot(_scope("/root/pypi/+simple/lib-c/", {}), receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert logged == [("/root/pypi/+simple/lib-c/", 200, len(body))]
    assert len(body) > 0
    await hot(_scope("/root/pypi/+simple/", {}), receive, send)  # the app answers, unlogged here
    assert len(logged) == 1


@pytest.mark.parametrize("answered_by", ["hot path", "app"])
async def test_the_first_answer_starts_the_upstream_client_import(
    services: AppServices, settings: Settings, monkeypatch: pytest.MonkeyPatch, answered_by: str
) -> None:
    """Whoever answers a worker's first request, the upstream client's import starts once the
    answer is out (mirror/client.py: not beside it, and not only when its timer ends)."""
    monkeypatch.setattr(client_module, "WARM_UP_AFTER", 3600)
    upstream = UpstreamClient(5)
    await upstream.start()
    try:
        app = create_app(settings)
        app.state.services = dataclasses.replace(services, upstream=upstream)
        hot = HotPath(app)
        await _cached_page(services, mirror(services), "lib-c")
        path = "/root/pypi/+simple/lib-c/" if answered_by == "hot path" else "/root/pypi/+simple/"
        scope = _scope(path, {"accept": PIP_ACCEPT})
        assert (hot.answer(scope, services) is not None) == (answered_by == "hot path")
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            assert not upstream.warming_up, "the import started before the answer was out"
            sent.append(message)

        assert not upstream.warming_up
        await hot(scope, receive, send)
        assert sent[0]["status"] == 200
        assert upstream.warming_up
    finally:
        await upstream.close()


async def test_requests_the_app_answers_count_as_work_and_hot_answers_do_not(
    services: AppServices, settings: Settings
) -> None:
    """services/quiet.py: background work waits for a pause in requests that need the app;
    answers from memory cost microseconds and do not hold it back."""
    quiet = Quiet()
    app = create_app(settings)
    app.state.services = dataclasses.replace(services, quiet=quiet)
    hot = HotPath(app)
    await _cached_page(services, mirror(services), "lib-c")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    await hot(_scope("/root/pypi/+simple/lib-c/", {"accept": PIP_ACCEPT}), receive, send)
    assert quiet.last_touched == float("-inf")
    before = time.monotonic()
    await hot(_scope("/root/pypi/+simple/", {"accept": PIP_ACCEPT}), receive, send)
    assert quiet.last_touched >= before
