"""The PyPI JSON API of an index: project and version documents built from the mirror."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support.packages import Dist
from tests.support.server import CheeseboardServer


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _json(url: str) -> dict[str, Any]:
    status, _, body = _get(url)
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def test_project_json_has_pypi_shape(
    mirror_server: CheeseboardServer, dists: dict[str, list[Dist]]
) -> None:
    """info comes from the wheel's METADATA; releases and urls point at our own file URLs."""
    document = _json(f"{mirror_server.url}root/pypi/+pypi/lib-a/json")
    info = document["info"]
    assert info["name"] == "lib-a"
    assert info["version"] == "1.0"
    assert info["requires_python"] == ">=3.8"
    assert info["requires_dist"] == ["lib-c"]
    assert info["summary"]
    assert set(document) >= {"info", "last_serial", "releases", "urls", "vulnerabilities"}
    files = {entry["filename"]: entry for entry in document["releases"]["1.0"]}
    for dist in dists["lib-a"]:
        entry = files[dist.filename]
        assert entry["digests"]["sha256"] == dist.sha256
        assert entry["size"] == dist.size
        assert entry["url"].startswith(mirror_server.url + "root/pypi/+f/")
        assert entry["upload_time_iso_8601"].endswith("Z")
        status, _, body = _get(entry["url"])
        assert status == 200 and len(body) == dist.size
    assert [e["filename"] for e in document["urls"]] == [e["filename"] for e in files.values()]


def test_version_json_matches_canonically_and_has_no_releases(
    mirror_server: CheeseboardServer,
) -> None:
    """/1.0.0/json finds release 1.0; unknown versions and projects are 404."""
    document = _json(f"{mirror_server.url}root/pypi/+pypi/lib-a/1.0.0/json")
    assert document["info"]["version"] == "1.0"
    assert "releases" not in document
    assert _get(f"{mirror_server.url}root/pypi/+pypi/lib-a/9.9/json")[0] == 404
    assert _get(f"{mirror_server.url}root/pypi/+pypi/no-such-thing/json")[0] == 404


@pytest.mark.parametrize("suffix", ["json", "1.0/json"])
def test_non_normalized_name_redirects(mirror_server: CheeseboardServer, suffix: str) -> None:
    """A non-normalized project name gets a 301 to the normalized URL."""
    request = urllib.request.Request(f"{mirror_server.url}root/pypi/+pypi/Lib_A/{suffix}")
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as error:
        opener.open(request, timeout=30)
    error.value.close()
    assert error.value.code == 301
    assert error.value.headers["Location"] == f"/root/pypi/+pypi/lib-a/{suffix}"


def test_json_api_revalidates_with_etag(mirror_server: CheeseboardServer) -> None:
    """The document has a strong ETag and answers If-None-Match with 304."""
    url = f"{mirror_server.url}root/pypi/+pypi/lib-b/json"
    status, headers, _ = _get(url)
    assert status == 200 and headers["etag"].startswith('"')
    assert _get(url, **{"If-None-Match": headers["etag"]})[0] == 304


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
