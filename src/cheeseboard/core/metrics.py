"""This process's metrics: counters and histograms kept in memory, cheap enough for hot paths.

Counting is a dict increment; a histogram observation is one ``bisect`` into fixed buckets. Each
worker process counts its own; ``snapshot`` freezes them into plain data that
``store/metrics_files.py`` publishes for the other workers, and ``merge`` adds snapshots up, so a
scrape of ``/-/metrics`` on any worker sees the whole server (core/metrics_text.py renders it).
The families exported, with their help text and labels, are listed in ``FAMILIES``; docs/metrics.md
describes them for operators.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

PREFIX = "cheeseboard_"
Labels = tuple[str, ...]
Kind = Literal["counter", "histogram", "gauge"]

ROUTE_CLASSES = ("page", "file", "upload", "api", "ui", "other")
"""What a request was for (label ``route``): taken from the matched route, never the raw path."""

REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Seconds. Cached pages and files answer in well under a millisecond; uploads take seconds."""
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
"""Seconds of an upstream fetch: a page with its parsing, a file's whole transfer."""


@dataclass(frozen=True, slots=True)
class Family:
    """One exported metric: its name without ``PREFIX``, type, help text and label names."""

    name: str
    kind: Kind
    help: str
    labels: Labels = ()
    buckets: tuple[float, ...] = ()


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "http_requests_total",
            "counter",
            "HTTP requests answered, by route class and status code",
            ("route", "status"),
        ),
        Family(
            "http_request_duration_seconds",
            "histogram",
            "time from a request's arrival to its answer's end, by route class and status code",
            ("route", "status"),
            REQUEST_BUCKETS,
        ),
        Family(
            "http_response_bytes_total",
            "counter",
            "response body bytes served (Content-Length), by route class",
            ("route",),
        ),
        Family(
            "upstream_request_duration_seconds",
            "histogram",
            "mirror indexes' upstream fetches (a page until parsed, a file until stored), "
            "by index, kind and outcome",
            ("index", "kind", "outcome"),
            UPSTREAM_BUCKETS,
        ),
        Family(
            "upstream_errors_total",
            "counter",
            "upstream fetches that failed (no answer, refused, an unusable status, bad bytes)",
            ("index", "kind"),
        ),
        Family("page_cache_hits_total", "counter", "simple pages served from memory"),
        Family(
            "page_cache_misses_total",
            "counter",
            "simple page requests memory could not answer (stored, built or fetched upstream)",
        ),
        Family("file_cache_hits_total", "counter", "file requests answered from the blob store"),
        Family(
            "file_cache_misses_total",
            "counter",
            "file requests whose bytes had to come from upstream or the bucket first",
        ),
        Family(
            "uploads_total", "counter", "files uploaded and stored (new or identical re-upload)"
        ),
        Family("upload_bytes_total", "counter", "bytes of the files counted by uploads_total"),
        Family("login_failures_total", "counter", "sign-ins refused for a wrong user or password"),
        Family("login_throttled_total", "counter", "sign-ins refused with 429 (too many failures)"),
        # Kept from before issue 23 (same names and meanings, now summed over the workers).
        Family("db_reads_total", "counter", "metadata database read transactions"),
        Family("db_writes_total", "counter", "metadata database write transactions"),
        Family("upstream_requests_total", "counter", "requests sent to upstream indexes"),
        Family(
            "page_builds_total",
            "counter",
            "simple pages rendered because their content was not stored",
        ),
        Family(
            "page_store_loads_total",
            "counter",
            "simple pages loaded from the rendered-page store",
        ),
        Family(
            "page_renders_total",
            "counter",
            "simple page renderings (a representation or encoding) made",
        ),
        Family("file_downloads_total", "counter", "mirror files fetched from upstream"),
        # Computed by the scraping worker (services/metrics.py), not summed.
        Family("blob_store_bytes", "gauge", "bytes of the files in the blob store"),
        Family("blob_store_files", "gauge", "files in the blob store"),
        Family("database_bytes", "gauge", "size of the metadata database"),
        Family("serial", "gauge", "the server's change serial (devpi's X-Devpi-Serial)"),
        Family("workers", "gauge", "worker processes whose metrics this scrape includes"),
    )
}


@dataclass(slots=True)
class Snapshot:
    """Counter values and histogram bucket counts (not cumulative) plus their sum, by family
    name and label values. Plain data: a worker publishes it, a scrape merges several."""

    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    histograms: dict[str, dict[Labels, list[float]]] = field(default_factory=dict)


# --- this process's values (mutable: every worker counts into its own) ---------------------------

counters: Counter[str] = Counter()
"""Unlabelled counters by family name (``count``)."""
_labelled: dict[tuple[str, Labels], float] = {}
_requests: dict[tuple[str, int], list[float]] = {}
"""(route class, status) -> bucket counts, then the sum of seconds, then bytes."""
_upstream: dict[tuple[str, str, str], list[float]] = {}
_REQ_SUM = len(REQUEST_BUCKETS) + 1
_REQ_BYTES = _REQ_SUM + 1


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to the unlabelled counter ``name`` (a key of ``FAMILIES``)."""
    counters[name] += amount


def count_labelled(name: str, labels: Labels, amount: float = 1) -> None:
    key = (name, labels)
    _labelled[key] = _labelled.get(key, 0) + amount


def observe_request(route: str, status: int, seconds: float, size: int) -> None:
    """Count one answered HTTP request (the hot path calls this for every request it answers)."""
    entry = _requests.get((route, status))
    if entry is None:
        entry = _requests[(route, status)] = [0.0] * (_REQ_BYTES + 1)
    entry[bisect_left(REQUEST_BUCKETS, seconds)] += 1
    entry[_REQ_SUM] += seconds
    entry[_REQ_BYTES] += size


def observe_upstream(index: str, kind: str, outcome: str, seconds: float) -> None:
    """Count one upstream fetch of mirror ``index`` (``kind``: page or file; ``outcome``: ok,
    not-found or error)."""
    key = (index, kind, outcome)
    entry = _upstream.get(key)
    if entry is None:
        entry = _upstream[key] = [0.0] * (len(UPSTREAM_BUCKETS) + 2)
    entry[bisect_left(UPSTREAM_BUCKETS, seconds)] += 1
    entry[-1] += seconds
    if outcome == "error":
        count_labelled("upstream_errors_total", (index, kind))


def status_label(status: int) -> str:
    """The ``status`` label: the code, or ``other`` for what is not an HTTP status."""
    return str(status) if 100 <= status <= 599 else "other"


def snapshot() -> Snapshot:
    """This process's values now, as plain data (copies)."""
    result = Snapshot()
    for name, amount in counters.items():
        result.counters.setdefault(name, {})[()] = float(amount)
    for (name, labels), value in _labelled.items():
        result.counters.setdefault(name, {})[labels] = value
    requests = result.counters.setdefault("http_requests_total", {})
    durations = result.histograms.setdefault("http_request_duration_seconds", {})
    sizes = result.counters.setdefault("http_response_bytes_total", {})
    for (route, status), entry in _requests.items():
        labels = (route, status_label(status))
        buckets = entry[:_REQ_BYTES]
        _add_histogram(durations, labels, buckets)
        requests[labels] = requests.get(labels, 0) + sum(entry[:_REQ_SUM])
        sizes[(route,)] = sizes.get((route,), 0) + entry[_REQ_BYTES]
    upstream = result.histograms.setdefault("upstream_request_duration_seconds", {})
    for labels, entry in _upstream.items():
        _add_histogram(upstream, labels, list(entry))
    return result


def reset() -> None:
    """Forget this process's values (tests; a forked worker keeps counting its parent's)."""
    counters.clear()
    _labelled.clear()
    _requests.clear()
    _upstream.clear()


def _add_histogram(into: dict[Labels, list[float]], labels: Labels, values: list[float]) -> None:
    known = into.get(labels)
    if known is None:
        into[labels] = list(values)
    elif len(known) == len(values):
        for position, value in enumerate(values):
            known[position] += value


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of ``snapshots``: counters added, histogram buckets and sums added bucket by
    bucket. A histogram with another bucket count than the family's (a snapshot written by
    another version) is left out rather than misread."""
    total = Snapshot()
    for part in snapshots:
        for name, values in part.counters.items():
            into = total.counters.setdefault(name, {})
            for labels, value in values.items():
                into[labels] = into.get(labels, 0) + value
        for name, histograms in part.histograms.items():
            family = FAMILIES.get(name)
            if family is None:
                continue
            width = len(family.buckets) + 2
            hist_into = total.histograms.setdefault(name, {})
            for labels, buckets in histograms.items():
                if len(buckets) == width:
                    _add_histogram(hist_into, labels, buckets)
    return total
