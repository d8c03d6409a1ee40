"""The Grafana dashboard in examples/grafana queries only metrics the server exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cheeseboard.core.metrics import FAMILIES, PREFIX

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "cheeseboard.json"
_NAME = re.compile(r"\b(cheeseboard_[a-z0-9_]+)")
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _family(series: str) -> str | None:
    """The exported family ``series`` belongs to, or None."""
    name = series.removeprefix(PREFIX)
    if name in FAMILIES and FAMILIES[name].kind != "histogram":
        return name
    for suffix in _HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and base in FAMILIES and FAMILIES[base].kind == "histogram":
            return base
    return None


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    """Each cheeseboard_* name in a panel or variable query is a family (or a histogram's
    _bucket/_sum/_count series) of core/metrics.py, and the panels cover what operators need."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(_queries(dashboard))
    assert len(queries) >= 15
    used = set()
    for query in queries:
        for series in _NAME.findall(query):
            family = _family(series)
            assert family is not None, f"{series} (in {query!r}) is not exported"
            used.add(family)
    wanted = {
        "http_requests_total",
        "http_request_duration_seconds",
        "http_response_bytes_total",
        "page_cache_hits_total",
        "file_cache_hits_total",
        "upstream_request_duration_seconds",
        "upstream_errors_total",
        "uploads_total",
        "login_failures_total",
        "login_throttled_total",
        "blob_store_bytes",
        "database_bytes",
        "serial",
    }
    assert wanted <= used, wanted - used
