"""A verifying load generator for the stress tests: many asyncio clients in one process.

Readers loop over *probes* (one request plus the check of its answer) as fast as the server
answers; uploaders post new distributions through the legacy upload API back to back and record
in a :class:`Ledger` what the server acknowledged, so probes and the final audit can demand that
nothing acknowledged is ever missing. Every request is timed per category; any unexpected
status, connection error, timeout or wrong content is an error, kept with its details.

One event loop drives all clients: each client owns one keep-alive connection (an aiohttp session
limited to one connection), like 220 separate pip/twine processes would.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from tests.support.api import basic, upload_body
from tests.support.packages import Dist, normalize

__all__ = [
    "SIMPLE_JSON",
    "Ledger",
    "LoadStats",
    "Probe",
    "ProbeSource",
    "Reply",
    "Upload",
    "access_log_summary",
    "percentile",
    "prepare_upload",
    "project_names",
    "run_load",
    "same_origin",
    "simple_files",
]

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_ANCHOR = re.compile(r'<a\s+href="([^"]*)"[^>]*>([^<]*)</a>')
_MAX_KEPT_ERRORS = 50


@dataclass(frozen=True)
class Reply:
    """One complete HTTP answer (headers with lower-case names, body already decoded)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


Check = Callable[[Reply], str | None]
"""Returns what is wrong with an answer, or None when it is right."""


@dataclass(frozen=True)
class Probe:
    """One read request and the check of its answer."""

    category: str
    path: str
    check: Check
    headers: Mapping[str, str] = field(default_factory=dict)


ProbeSource = Callable[[random.Random], Probe]
"""Makes the next probe of its kind; called when the request is about to be sent."""


@dataclass(frozen=True)
class Upload:
    """A distribution with its ready-made multipart body, as twine would send it."""

    dist: Dist
    project: str
    body: bytes
    content_type: str


def prepare_upload(dist: Dist) -> Upload:
    """The legacy-upload multipart body for ``dist`` (the fields twine sends, then the file)."""
    body, content_type = upload_body(dist, summary="A load test package")
    return Upload(dist, normalize(dist.name), body, content_type)


# --- what the server acknowledged ---------------------------------------------------------------


class Ledger:
    """Uploads as the clients saw them: attempted (any outcome) and acknowledged (200).

    A probe takes a snapshot when it sends its request: everything acknowledged by then must be
    visible in the answer, whichever worker gives it.
    """

    def __init__(self) -> None:
        self.attempted: dict[str, dict[str, str]] = defaultdict(dict)  # project -> file -> sha256
        self.acked: dict[str, dict[str, str]] = defaultdict(dict)
        self.acked_count = 0

    def attempt(self, upload: Upload) -> None:
        self.attempted[upload.project][upload.dist.filename] = upload.dist.sha256

    def ack(self, upload: Upload) -> None:
        self.acked[upload.project][upload.dist.filename] = upload.dist.sha256
        self.acked_count += 1

    def projects(self) -> list[str]:
        return [project for project, files in self.acked.items() if files]

    def snapshot(self, project: str) -> dict[str, str]:
        return dict(self.acked.get(project, {}))


# --- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _figures(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds, default=0.0) * 1000, 1),
    }


@dataclass(frozen=True)
class Failure:
    """One failed request: what was asked and what went wrong."""

    category: str
    request: str
    problem: str
    seconds: float


class LoadStats:
    """Latencies and failures per category, for the whole run."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.failures: list[Failure] = []
        self.errors_by_category: Counter[str] = Counter()
        self.started = 0.0
        self.finished = 0.0

    def record(self, category: str, request: str, seconds: float, problem: str | None) -> None:
        self.latencies[category].append(seconds)
        if problem is not None:
            self.errors_by_category[category] += 1
            if len(self.failures) < _MAX_KEPT_ERRORS:
                self.failures.append(Failure(category, request, problem, seconds))

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def errors(self) -> int:
        return sum(self.errors_by_category.values())

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    def categories(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for category in sorted(self.latencies):
            values = self.latencies[category]
            table[category] = {
                "requests": len(values),
                "errors": self.errors_by_category[category],
                **_figures(values),
            }
        every = [value for values in self.latencies.values() for value in values]
        table["all"] = {"requests": len(every), "errors": self.errors, **_figures(every)}
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "elapsed_s": round(self.elapsed, 2),
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.elapsed, 1) if self.elapsed else 0.0,
            "errors": self.errors,
            "categories": self.categories(),
            "failures": [vars(failure) for failure in self.failures],
        }

    def table(self) -> str:
        """The figures as a fixed-width text table, one category a row, "all" last."""
        header = f"{'category':<16}{'requests':>10}{'errors':>8}"
        header += "".join(f"{name:>10}" for name in ("p50 ms", "p95 ms", "p99 ms", "max ms"))
        lines = [header, "-" * len(header)]
        for category, row in self.categories().items():
            lines.append(
                f"{category:<16}{row['requests']:>10}{row['errors']:>8}"
                + "".join(f"{row[key]:>10.1f}" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            )
        rate = self.requests / self.elapsed if self.elapsed else 0.0
        lines.append(
            f"{self.requests} requests in {self.elapsed:.1f} s ({rate:.0f}/s), {self.errors} errors"
        )
        lines.extend(
            f"  {f.category} {f.request} after {f.seconds:.2f} s: {f.problem}"
            for f in self.failures[:20]
        )
        return "\n".join(lines)


# --- reading pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One file as a simple page lists it."""

    url: str  # absolute, resolved against the page's URL
    sha256: str
    core_metadata: str | None  # sha256 of the .metadata file, where the page advertises one


def simple_files(page_url: str, reply: Reply) -> dict[str, Listed]:
    """Filename -> listing of a PEP 691 JSON or PEP 503 HTML project page."""
    if reply.headers.get("content-type", "").startswith(SIMPLE_JSON):
        files: dict[str, Listed] = {}
        for item in json.loads(reply.body)["files"]:
            meta = item.get("core-metadata")
            files[item["filename"]] = Listed(
                urljoin(page_url, item["url"]).split("#")[0],
                item["hashes"]["sha256"],
                meta["sha256"] if isinstance(meta, dict) else None,
            )
        return files
    text = reply.body.decode()
    files = {}
    for match in re.finditer(r"<a\s+([^>]*)>([^<]*)</a>", text):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
        href = html.unescape(attrs.get("href", ""))
        url, _, fragment = href.partition("#")
        meta = html.unescape(attrs.get("data-core-metadata", ""))
        files[html.unescape(match.group(2))] = Listed(
            urljoin(page_url, url),
            fragment.removeprefix("sha256="),
            meta.removeprefix("sha256=") if meta.startswith("sha256=") else None,
        )
    return files


def project_names(reply: Reply) -> set[str]:
    """The project names of a PEP 691 JSON or PEP 503 HTML project list."""
    if reply.headers.get("content-type", "").startswith(SIMPLE_JSON):
        return {item["name"] for item in json.loads(reply.body)["projects"]}
    return {html.unescape(name) for _, name in _ANCHOR.findall(reply.body.decode())}


# --- the access log -----------------------------------------------------------------------------

_ACCESS = re.compile(r"^ts=\S+ worker=(\d+) .* status=(\d+) bytes=\d+ ms=([\d.]+)$", re.MULTILINE)


def access_log_summary(log: str) -> dict[str, Any]:
    """Requests per worker, statuses and server-side latency from the server's access log."""
    workers: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    millis: list[float] = []
    for worker, status, ms in _ACCESS.findall(log):
        workers[worker] += 1
        statuses[status] += 1
        millis.append(float(ms) / 1000)
    return {
        "requests": len(millis),
        "by_worker": dict(workers),
        "by_status": dict(sorted(statuses.items())),
        **_figures(millis),
    }


# --- the clients --------------------------------------------------------------------------------


def _session(timeout: float, **headers: str) -> aiohttp.ClientSession:
    """A client with one keep-alive connection, like one pip or twine process."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers=headers,
    )


async def _fetch(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    data: bytes | None = None,
) -> Reply:
    async with session.request(
        method, url, headers=dict(headers), data=data, allow_redirects=False
    ) as response:
        body = await response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, body)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


async def _reader(
    base_url: str,
    sources: Sequence[ProbeSource],
    weights: Sequence[float],
    rng: random.Random,
    deadline: float,
    stats: LoadStats,
    timeout: float,
) -> None:
    async with _session(timeout, **{"Accept-Encoding": "gzip"}) as session:
        while time.monotonic() < deadline:
            probe = rng.choices(sources, weights)[0](rng)
            url = base_url + probe.path.lstrip("/")
            started = time.perf_counter()
            try:
                reply = await _fetch(session, "GET", url, probe.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.record(
                    probe.category, probe.path, time.perf_counter() - started, _describe(exc)
                )
                continue
            seconds = time.perf_counter() - started
            try:
                problem = probe.check(reply)
            except (ValueError, KeyError, TypeError) as exc:  # unparsable answer
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                problem = f"{problem} (status {reply.status}: {reply.body[:300]!r})"
            stats.record(probe.category, probe.path, seconds, problem)


async def _uploader(
    index_url: str,
    auth: tuple[str, str],
    make: Callable[[int], Upload],
    deadline: float,
    ledger: Ledger,
    stats: LoadStats,
    timeout: float,
) -> None:
    """Upload ``make(0)``, ``make(1)``, … back to back until the deadline."""
    async with _session(timeout, Authorization=basic(*auth)) as session:
        number = 0
        while time.monotonic() < deadline:
            upload = make(number)
            number += 1
            ledger.attempt(upload)
            headers = {"Content-Type": upload.content_type}
            problem: str | None = None
            started = time.perf_counter()
            try:
                reply = await _fetch(session, "POST", index_url, headers, upload.body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = _describe(exc)
            else:
                if reply.status == 200:
                    ledger.ack(upload)
                else:
                    problem = f"status {reply.status}: {reply.body[:300]!r}"
            stats.record("upload", upload.dist.filename, time.perf_counter() - started, problem)


async def run_load(
    base_url: str,
    *,
    probes: Mapping[ProbeSource, float],
    readers: int,
    uploaders: Sequence[Callable[[int], Upload]],
    upload_url: str,
    upload_auth: tuple[str, str],
    seconds: float,
    ledger: Ledger,
    seed: int = 9,
    timeout: float = 30.0,
) -> LoadStats:
    """``readers`` probing clients and one uploader per ``uploaders`` entry, for ``seconds``.

    Clients start no request after the deadline; requests in flight then are awaited and counted.
    """
    stats = LoadStats()
    sources, weights = list(probes), list(probes.values())
    base_url = base_url.rstrip("/") + "/"
    stats.started = time.monotonic()
    deadline = stats.started + seconds
    tasks = [
        _reader(base_url, sources, weights, random.Random(f"{seed}-{n}"), deadline, stats, timeout)
        for n in range(readers)
    ]
    tasks += [
        _uploader(upload_url, upload_auth, make, deadline, ledger, stats, timeout)
        for make in uploaders
    ]
    await asyncio.gather(*tasks)
    stats.finished = time.monotonic()
    return stats


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` points at the server at ``base_url`` (links must not leave it)."""
    return urlsplit(url)[:2] == urlsplit(base_url)[:2]
