"""What a client reads when upstream fails (issue 23): the 502 names the upstream and says why in a
few words of our own, never aiohttp's class names or its text about the socket."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

from tests.support.packages import Dist
from tests.support.server import ServerFactory, free_port
from tests.support.upstream import Fault, UpstreamServer

# What the old text carried: aiohttp's class names ("ClientConnectorError: Cannot connect to
# host ...", "ServerDisconnectedError: ...") and errno text.
INTERNALS = re.compile(r"[A-Z][a-z]+[A-Za-z]*Error|Cannot connect|Errno|aiohttp")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_a_refused_upstream_is_named_with_a_short_reason(server_factory: ServerFactory) -> None:
    simple = f"http://127.0.0.1:{free_port()}/simple/"  # nothing listens there
    server = server_factory.start(simple, "--request-timeout", "2")
    status, body = _get(f"{server.url}root/pypi/+simple/foo/")
    assert status == 502, body
    assert f"upstream {simple} failed for 'foo'" in body
    assert "connection refused" in body
    assert not INTERNALS.search(body), body


def test_a_reset_file_download_names_the_upstream_host(
    server_factory: ServerFactory, html_upstream: UpstreamServer, dists: dict[str, list[Dist]]
) -> None:
    server = server_factory.start(html_upstream.simple_url, "--request-timeout", "2")
    status, page = _get(f"{server.url}root/pypi/+simple/app/")
    assert status == 200, page
    wheel = dists["app"][0].filename
    html_upstream.set_fault(wheel, Fault("reset"))
    found = re.search(rf'href="([^"]*{re.escape(wheel)})[#"]', page)
    assert found, page
    status, body = _get(urllib.parse.urljoin(f"{server.url}root/pypi/+simple/app/", found[1]))
    assert status == 502, body
    host = html_upstream.url.split("//", 1)[1].rstrip("/")
    assert f"fetching {wheel} from {host} failed: connection " in body
    assert not INTERNALS.search(body), body
