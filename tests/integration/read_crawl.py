"""A crawler for test_read_leaks.py: every request one identity can make to a real server
without changing anything (GET, HEAD, OPTIONS), and what the answers reveal.

Requests go out on keep-alive connections (one per thread) exactly as given: no redirects
followed, no normalising of paths. Links are taken from every answer: ``href``/``src``/``action``
attributes and URL-looking text of HTML, URL strings anywhere in JSON, and ``Location`` headers;
only links back to the server under test are followed.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON = "application/json"
PEP691 = "application/vnd.pypi.simple.v1+json"
ANY = "*/*"

# What is asked of each URL: (method, Accept). Installers' kinds of Accept go to simple pages.
VARIANTS: tuple[tuple[str, str], ...] = (
    ("GET", HTML),
    ("GET", JSON),
    ("HEAD", HTML),
    ("OPTIONS", ANY),
)
SIMPLE_VARIANTS: tuple[tuple[str, str], ...] = (("GET", PEP691), ("GET", ANY), ("HEAD", ANY))

_LINK = re.compile(rb"""(?:href|src|action)\s*=\s*["']([^"'<>]*)["']""", re.IGNORECASE)
_TEXT_URL = re.compile(rb"""https?://[^\s"'<>()\\]+""")


@dataclass(frozen=True)
class Exchange:
    """One request and its answer (header names lower-cased)."""

    method: str
    path: str
    accept: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def text(self) -> str:
        """Headers and body as one lower-cased string, for looking for words."""
        head = "\n".join(f"{key}: {value}" for key, value in self.headers)
        return (head + "\n\n" + self.body.decode("latin-1")).lower()

    def __str__(self) -> str:
        accept = "" if self.method == "OPTIONS" else f" [Accept: {self.accept.split(',')[0]}]"
        return f"{self.method} {self.path}{accept} -> {self.status} ({len(self.body)} bytes)"


class Client:
    """Requests as one identity: an ``Authorization`` header and/or a web session cookie."""

    def __init__(self, base_url: str, authorization: str | None, cookie: str | None) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers: dict[str, str] = {"User-Agent": "Mozilla/5.0 (read-leak crawler)"}
        if authorization is not None:
            self.headers["Authorization"] = authorization
        if cookie is not None:
            self.headers["Cookie"] = cookie
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection

    def send(self, method: str, path: str, accept: str) -> Exchange:
        headers = {**self.headers, "Accept": accept}
        for attempt in range(2):
            connection = self._connection(fresh=attempt > 0)
            try:
                connection.request(method, path, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                continue
            if response.will_close:
                connection.close()
                self._local.connection = None
            answer = tuple((key.lower(), value) for key, value in response.getheaders())
            return Exchange(method, path, accept, response.status, answer, body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()


def variants(path: str) -> tuple[tuple[str, str], ...]:
    if "/+simple" in path:
        return VARIANTS + SIMPLE_VARIANTS
    return VARIANTS


def links(base_url: str, exchange: Exchange) -> Iterator[str]:
    """Paths (with query) on the server under test that ``exchange``'s answer points to."""
    here = urljoin(base_url, exchange.path)
    found: list[str] = []
    location = exchange.header("location")
    if location:
        found.append(location)
    body = exchange.body
    content_type = (exchange.header("content-type") or "").lower()
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            found.extend(_json_strings(json.loads(body)))
    else:
        found.extend(html.unescape(raw.decode("utf-8", "replace")) for raw in _LINK.findall(body))
    found.extend(raw.decode("utf-8", "replace") for raw in _TEXT_URL.findall(body))
    server = urlsplit(base_url)
    for link in found:
        link = link.strip()
        if not link or link.startswith(("#", "javascript:", "mailto:", "data:")):
            continue
        if not link.startswith(("/", "http://", "https://")) and "json" in content_type:
            continue  # a JSON string that is not a URL
        target = urlsplit(urljoin(here, link))
        if target.scheme not in ("http", "https") or target.netloc != server.netloc:
            continue
        yield target.path + (f"?{target.query}" if target.query else "")


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith(("/", "http://", "https://")):
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _json_strings(key)
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


@dataclass
class Crawl:
    """Everything one identity was answered."""

    identity: str
    exchanges: list[Exchange] = field(default_factory=list)
    truncated: bool = False

    def answers(self, path: str) -> dict[tuple[str, str], Exchange]:
        return {(x.method, x.accept): x for x in self.exchanges if x.path == path}


def crawl(
    client: Client,
    identity: str,
    seeds: Iterable[str],
    max_requests: int,
    follow: Callable[[str], bool] = lambda path: True,
    variants_of: Callable[[str], tuple[tuple[str, str], ...]] = variants,
    threads: int = 6,
) -> Crawl:
    """Breadth first from ``seeds``: each path with each of its request variants, then every
    link found in the answers that ``follow`` accepts, until nothing new is found or
    ``max_requests`` are made."""
    result = Crawl(identity)
    seen: set[str] = set()
    level: list[str] = []
    for path in seeds:
        if path not in seen:
            seen.add(path)
            level.append(path)
    with ThreadPoolExecutor(threads) as pool:
        while level:
            jobs = [
                (method, path, accept) for path in level for method, accept in variants_of(path)
            ]
            if len(result.exchanges) + len(jobs) > max_requests:
                jobs = jobs[: max(0, max_requests - len(result.exchanges))]
                result.truncated = True
            answers = list(pool.map(lambda job: client.send(*job), jobs))
            result.exchanges.extend(answers)
            if result.truncated:
                break
            level = []
            for answer in answers:
                for path in links(client.base_url, answer):
                    if path not in seen and follow(path):
                        seen.add(path)
                        level.append(path)
    return result


def request_words(exchange: Exchange) -> str:
    """What the caller itself said in the request line (a word echoed back is no leak)."""
    return unquote(exchange.path).lower()
