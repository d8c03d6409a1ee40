"""Process-local counters, rendered in the Prometheus text format at ``/-/metrics``.

Counting is a dict increment, cheap enough for hot paths. Each worker process has its own counts;
the ``worker`` label tells them apart.
"""

from __future__ import annotations

import os
from collections import Counter

_HELP = {
    "db_reads_total": "metadata database read connections opened",
    "db_writes_total": "metadata database write transactions",
    "upstream_requests_total": "requests sent to upstream indexes",
    "page_cache_hits_total": "simple pages served from memory",
    "page_builds_total": "simple pages rendered because their content was not stored",
    "page_store_loads_total": "simple pages loaded from the rendered-page store",
    "page_renders_total": "simple page renderings (a representation or encoding) made",
    "file_downloads_total": "mirror files fetched from upstream",
}

counters: Counter[str] = Counter()


def count(name: str, amount: int = 1) -> None:
    counters[name] += amount


def render() -> str:
    worker = os.getpid()
    lines: list[str] = []
    for name, help_text in _HELP.items():
        metric = f"cheeseboard_{name}"
        lines += [
            f"# HELP {metric} {help_text}",
            f"# TYPE {metric} counter",
            f'{metric}{{worker="{worker}"}} {counters[name]}',
        ]
    return "\n".join(lines) + "\n"
