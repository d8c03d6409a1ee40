"""The web UI's stylesheet and script: read once, served from memory with immutable caching.

URLs carry a digest of the content (``/+static/style.css?v=…``), so browsers keep a file for
a year and a new release is fetched at once. The README code highlighting styles come from
Pygments (light and dark), generated once at import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from pygments.formatters import HtmlFormatter
from starlette.requests import Request
from starlette.responses import Response

from cheeseboard.http.access import PUBLIC, GuardedRoute
from cheeseboard.services.errors import NotFound

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    digest: str


def _highlight_css() -> str:
    """Pygments classes inside rendered READMEs (readme-renderer emits ``<pre><span class>``)."""
    light = HtmlFormatter(style="default").get_style_defs(".readme pre")  # type: ignore[no-untyped-call]
    dark = HtmlFormatter(style="monokai").get_style_defs(".readme pre")  # type: ignore[no-untyped-call]
    # Background colours come from our own palette, not the Pygments style.
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def _load() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    folder = resources.files("cheeseboard.http.ui") / "static"
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        if entry.name == "style.css":
            body += b"\n/* code highlighting (Pygments) */\n" + _highlight_css().encode()
        digest = hashlib.sha256(body).hexdigest()[:12]
        assets[entry.name] = Asset(body, _TYPES[suffix], digest)
    return assets


ASSETS = _load()


def asset_url(name: str) -> str:
    return f"/+static/{name}?v={ASSETS[name].digest}"


async def static(request: Request) -> Response:
    asset = ASSETS.get(request.path_params["name"])
    if asset is None:
        raise NotFound(f"no static file {request.path_params['name']!r}")
    etag = f'"{asset.digest}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


routes = [GuardedRoute("/+static/{name}", static, GET=PUBLIC)]
