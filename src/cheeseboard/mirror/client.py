"""The upstream HTTP client: one aiohttp session per process, opened and closed by the app.

Fetching returns raw pages (bytes, type, URL, validators); parsing and policy live elsewhere.
aiohttp is not imported with this module: the serving parent never loads it (about a tenth of
a second of start-up and 10-13 MiB per process; issue 19). Each worker imports it on a thread
once its first answer is out, or shortly after start (``UpstreamClient.warm_up``), and the
session is made on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from cheeseboard import __version__
from cheeseboard.core import metrics
from cheeseboard.mirror.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnavailable
from cheeseboard.mirror.outbound import CURRENT_HOP, OutboundPolicy, OutboundRefused, check_url
from cheeseboard.tls import client_context

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

# JSON first: real PyPI answers with PEP 691; HTML-only mirrors send HTML (docs/standards.md §3).
PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
MAX_PAGE_BYTES = 64 * 1024 * 1024
"""Largest upstream page (simple page, JSON API document, .metadata) read into memory, counted
after decompression, so a gzip bomb stops here too. numpy's page is about 1.5 MB and the biggest
projects' pages a few tens of MB; an answer declaring more is refused before its body is read, one
streaming more is cut off here: either way upstream failed (502, or the cached page)."""
_CHUNK = 256 * 1024
WARM_UP_AFTER = 0.1
"""Seconds after ``UpstreamClient.start`` when aiohttp is imported if no request came first."""


@dataclass(frozen=True, slots=True)
class RawPage:
    """An upstream answer before parsing."""

    url: str  # final URL, after redirects: relative links resolve against it
    content_type: str
    body: bytes
    etag: str | None
    last_serial: int | None


@dataclass(frozen=True, slots=True)
class UpstreamFile:
    """An upstream file download in progress: headers known, body to be read."""

    url: str
    size: int | None
    chunks: AsyncIterator[bytes]


class UpstreamClient:
    """GETs against upstream indexes with our timeouts, limits and error mapping.

    Every request names the OutboundPolicy it runs under (mirror/outbound.py); redirects are
    followed here, hop by hop, so that each hop is checked against it.
    """

    def __init__(self, request_timeout: float, ca_bundle: str | None = None) -> None:
        self._timeout = request_timeout
        self._ca_bundle = ca_bundle  # --ca-bundle: CAs trusted besides the system's (tls.py)
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._warm_up: asyncio.Future[None] | None = None
        self._warm_timer: asyncio.TimerHandle | None = None
        self._before_close: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        """Allow requests; the session itself is made by the first one (``session``).

        aiohttp is imported on a thread soon after: a first request for an uncached page then
        finds it loaded instead of importing it on the event loop (about 0.1 s during which the
        worker answered nothing; issue 19's cold installs: 0.99 s importing on the loop, 0.79 s
        on a thread, medians of 6 interleaved runs). Not at once: the import holds the GIL for
        tens of milliseconds, which a restarted worker's first answers waited out (``warm_up``).
        """
        self._started = True
        self._warm_timer = asyncio.get_running_loop().call_later(WARM_UP_AFTER, self.warm_up)

    @property
    def warming_up(self) -> bool:
        """Whether aiohttp's import has been started (``warm_up``)."""
        return self._warm_up is not None

    def warm_up(self) -> None:
        """Start importing aiohttp on a thread, unless that has started already: once the
        worker has answered its first request (http/hot.py), or WARM_UP_AFTER seconds after
        ``start``, whichever comes first. A restarted worker's first answer came 45 ms later
        (median of 6) while the import ran beside it."""
        if not self._started or self._warm_up is not None:
            return
        if self._warm_timer is not None:
            self._warm_timer.cancel()
            self._warm_timer = None
        self._warm_up = asyncio.get_running_loop().run_in_executor(
            None, _import_aiohttp, self._ca_bundle
        )

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        from cheeseboard.mirror.resolver import GuardedResolver

        # aiohttp's own DNS cache would hand out addresses without asking the guarded resolver;
        # the resolver caches instead, and filters on every use.
        connector = aiohttp.TCPConnector(
            # Without a bundle aiohttp's own context, the same create_default_context() made
            # when it was imported: one context per process either way.
            ssl=client_context(self._ca_bundle) if self._ca_bundle else True,
            limit=100,
            limit_per_host=32,
            use_dns_cache=False,
            resolver=GuardedResolver(aiohttp.DefaultResolver()),
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": f"cheeseboard/{__version__}"},
            auto_decompress=True,
            raise_for_status=False,
        )

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Have ``close`` await ``callback()`` first: background work of this client's users
        (services/mirror.py's facts jobs) ends before the session it uses does."""
        self._before_close.append(callback)

    async def close(self) -> None:
        callbacks, self._before_close = self._before_close, []
        for callback in reversed(callbacks):
            await callback()
        self._started = False
        if self._warm_timer is not None:
            self._warm_timer.cancel()
            self._warm_timer = None
        if self._warm_up is not None:
            # The import ends on its thread before the loop that awaits it may close.
            with contextlib.suppress(Exception):
                await self._warm_up
            self._warm_up = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, made on first use (inside the running event loop)."""
        if not self._started:
            raise RuntimeError("UpstreamClient.start() was not called")
        if self._session is None:
            self._session = self._open_session()
        return self._session

    async def _send(
        self, method: str, url: str, policy: OutboundPolicy, redirects: int, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        """One request, following up to ``redirects`` redirects; each hop's URL is checked
        before it is asked, and its addresses at connect time (GuardedResolver).

        Raises OutboundRefused, aiohttp's errors, or UpstreamUnavailable for too many hops.
        """
        for _ in range(redirects + 1):
            token = CURRENT_HOP.set(check_url(url, policy))
            try:
                response = await self.session.request(method, url, allow_redirects=False, **kwargs)
            finally:
                CURRENT_HOP.reset(token)
            location = response.headers.get("Location")
            if not (redirects and response.status in _REDIRECTS and location):
                return response
            response.release()
            url = urljoin(str(response.url), location)
        raise UpstreamUnavailable(url, f"more than {redirects} redirects")

    async def _read_capped(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > MAX_PAGE_BYTES:
            raise UpstreamUnavailable(url, f"page too large ({declared} bytes)")
        parts: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            total += len(chunk)
            if total > MAX_PAGE_BYTES:
                raise UpstreamUnavailable(url, f"page larger than {MAX_PAGE_BYTES} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def fetch_page(
        self,
        url: str,
        policy: OutboundPolicy,
        accept: str = PAGE_ACCEPT,
        etag: str | None = None,
    ) -> RawPage | None:
        """GET a page; None means 304 (our copy with ``etag`` is current).

        Raises UpstreamNotFound for 404/410, UpstreamRefused when ``policy`` forbids a hop, and
        UpstreamUnavailable for anything else unusable.
        """
        import aiohttp

        metrics.count("upstream_requests_total")
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        try:
            response = await self._send(
                "GET", url, policy, MAX_REDIRECTS, headers=headers, timeout=timeout
            )
            async with response:
                if response.status == 304 and etag:
                    return None
                if response.status in (404, 410):
                    raise UpstreamNotFound(url, f"upstream answered {response.status}")
                if response.status != 200:
                    raise UpstreamUnavailable(url, f"upstream answered {response.status}")
                body = await self._read_capped(response, url)
                serial = response.headers.get("X-PyPI-Last-Serial", "")
                return RawPage(
                    url=str(response.url),
                    content_type=response.headers.get("Content-Type", ""),
                    body=body,
                    etag=response.headers.get("ETag"),
                    last_serial=int(serial)
                    if serial.isascii() and serial.isdigit() and len(serial) < 19
                    else None,
                )
        except OutboundRefused as exc:
            raise UpstreamRefused(url, exc.reason) from exc
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise _unavailable(url, exc, f"no answer within {self._timeout:g}s") from exc

    @asynccontextmanager
    async def open_file(self, url: str, policy: OutboundPolicy) -> AsyncIterator[UpstreamFile]:
        """Stream a file. The body may be large, so only connect and read stalls time out."""
        import aiohttp

        metrics.count("upstream_requests_total")
        metrics.count("file_downloads_total")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout
        )
        try:
            response = await self._send(
                "GET",
                url,
                policy,
                MAX_REDIRECTS,
                timeout=timeout,
                # Files must arrive as stored: a gzip-encoded .tar.gz would hash differently.
                headers={"Accept-Encoding": "identity"},
                auto_decompress=False,
            )
            async with response:
                if response.status in (404, 410):
                    raise UpstreamNotFound(url, f"upstream answered {response.status}")
                if response.status != 200:
                    raise UpstreamUnavailable(url, f"upstream answered {response.status}")
                yield UpstreamFile(
                    url=str(response.url),
                    size=response.content_length,
                    chunks=self._chunks(response, url),
                )
        except OutboundRefused as exc:
            raise UpstreamRefused(url, exc.reason) from exc
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise _unavailable(url, exc, f"stalled for {self._timeout:g}s") from exc

    async def post_upload(
        self,
        url: str,
        policy: OutboundPolicy,
        fields: list[tuple[str, str]],
        filename: str,
        path: Path,
        auth: tuple[str, str] | None,
    ) -> int:
        """POST a legacy-API upload form (the file streamed from ``path``); returns the status.

        Redirects are not followed (they would carry the credentials elsewhere) and the answer's
        body is not read: whatever the target says stays there, so a push cannot be used to read
        a server it reaches. Raises UpstreamRefused when ``policy`` forbids the URL, and
        UpstreamUnavailable with a short reason of our own when the index cannot be reached.
        """
        import aiohttp

        metrics.count("upstream_requests_total")
        form = aiohttp.FormData(quote_fields=False)
        for key, value in fields:
            form.add_field(key, value)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout * 6
        )
        basic = aiohttp.BasicAuth(*auth) if auth else None
        with path.open("rb") as handle:  # our storage failing is not the target's fault
            form.add_field(
                "content", handle, filename=filename, content_type="application/octet-stream"
            )
            try:
                response = await self._send(
                    "POST", url, policy, 0, data=form, auth=basic, timeout=timeout
                )
                response.release()
                return response.status
            except OutboundRefused as exc:
                raise UpstreamRefused(url, exc.reason) from exc
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                raise UpstreamUnavailable(url, short_reason(exc)) from exc

    async def _chunks(self, response: aiohttp.ClientResponse, url: str) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _unavailable(url, exc, f"stalled for {self._timeout:g}s") from exc


def _import_aiohttp(ca_bundle: str | None) -> None:
    import aiohttp  # noqa: F401 - loaded for the first upstream request

    from cheeseboard.mirror import resolver  # noqa: F401 - aiohttp's resolver base class

    # The IDNA codec, which the first request's host name goes through, imports on first use
    # (encodings.idna, stringprep): 1% of a cold install's time with the GIL, on the event loop.
    "localhost".encode("idna")

    if ca_bundle:
        client_context(ca_bundle)  # reads the system store too: off the event loop


def short_reason(exc: BaseException) -> str:
    """A few words of our own for a failed connection, never the peer's answer."""
    import aiohttp

    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host not found"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _certificate_reason(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            "connection refused" if exc.os_error.errno == errno.ECONNREFUSED else "cannot connect"
        )
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET:
        return "connection reset"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection closed"
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return "invalid URL"
    return "connection failed"


# OpenSSL's X509_V_ERR_* codes worth their own words; the rest is "not trusted".
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def _certificate_reason(error: BaseException) -> str:
    """Upstream's certificate failed verification: which way, in our words (the 502 text)."""
    code = getattr(error, "verify_code", None)
    if code == _HOSTNAME_MISMATCH:
        return "TLS certificate is for another host name"
    if code == _CERT_EXPIRED:
        return "TLS certificate has expired"
    return "TLS certificate not trusted (add its CA with --ca-bundle or SSL_CERT_FILE)"


def _unavailable(url: str, exc: BaseException, timeout_reason: str) -> UpstreamUnavailable:
    """Our error for an aiohttp failure or timeout (the one place aiohttp's errors are mapped).

    The reason reaches clients (502 bodies, the stale header): a few words of our own, never
    aiohttp's class names; the library's own text goes to the log for operators."""
    if isinstance(exc, TimeoutError):
        return UpstreamUnavailable(url, timeout_reason)
    log.info("upstream %s: %s: %s", url, type(exc).__name__, exc)
    return UpstreamUnavailable(url, short_reason(exc))
