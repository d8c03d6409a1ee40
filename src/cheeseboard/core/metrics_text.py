"""Metrics as text: the Prometheus exposition format (0.0.4) for scrapes, and the JSON form in
which workers hand their snapshots to each other (store/metrics_files.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from cheeseboard.core.metrics import FAMILIES, PREFIX, Family, Labels, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FORMAT = 1  # version of the JSON snapshot layout


def escape_label(value: str) -> str:
    """A label value as the exposition format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _labels(names: Labels, values: Labels, extra: str = "") -> str:
    parts = [f'{name}="{escape_label(value)}"' for name, value in zip(names, values, strict=False)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _histogram_lines(family: Family, values: Mapping[Labels, list[float]]) -> list[str]:
    metric = PREFIX + family.name
    lines: list[str] = []
    for labels in sorted(values):
        buckets = values[labels]
        running = 0.0
        for bound, amount in zip(family.buckets, buckets, strict=False):
            running += amount
            le = f'le="{_number(float(bound))}"'
            lines.append(f"{metric}_bucket{_labels(family.labels, labels, le)} {_number(running)}")
        running += buckets[len(family.buckets)]
        inf = _labels(family.labels, labels, 'le="+Inf"')
        lines.append(f"{metric}_bucket{inf} {_number(running)}")
        lines.append(f"{metric}_sum{_labels(family.labels, labels)} {_number(buckets[-1])}")
        lines.append(f"{metric}_count{_labels(family.labels, labels)} {_number(running)}")
    return lines


def render(snapshot: Snapshot, gauges: Mapping[str, float]) -> str:
    """Every family of ``FAMILIES`` with its HELP and TYPE lines; an unlabelled counter that
    was never counted shows 0, so dashboards see the series from the start."""
    lines: list[str] = []
    for family in FAMILIES.values():
        metric = PREFIX + family.name
        lines.append(f"# HELP {metric} {family.help}")
        lines.append(f"# TYPE {metric} {family.kind}")
        if family.kind == "histogram":
            lines += _histogram_lines(family, snapshot.histograms.get(family.name, {}))
        elif family.kind == "gauge":
            if family.name in gauges:
                lines.append(f"{metric} {_number(gauges[family.name])}")
        else:
            values = snapshot.counters.get(family.name, {})
            if not family.labels and () not in values:
                values = {(): 0.0}
            for labels in sorted(values):
                lines.append(f"{metric}{_labels(family.labels, labels)} {_number(values[labels])}")
    return "\n".join(lines) + "\n"


def dumps(snapshot: Snapshot) -> bytes:
    """``snapshot`` as compact JSON (label tuples become lists)."""
    data = {
        "format": _FORMAT,
        "counters": {
            name: [[list(labels), value] for labels, value in values.items()]
            for name, values in snapshot.counters.items()
        },
        "histograms": {
            name: [[list(labels), buckets] for labels, buckets in values.items()]
            for name, values in snapshot.histograms.items()
        },
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


class BadSnapshot(ValueError):
    """Raised when published snapshot bytes are not a snapshot of this format."""


def loads(raw: bytes) -> Snapshot:
    """The snapshot ``dumps`` wrote; raises BadSnapshot for anything else."""
    try:
        data = json.loads(raw)
        if data.get("format") != _FORMAT:
            raise BadSnapshot("unknown snapshot format")
        result = Snapshot()
        for name, rows in data["counters"].items():
            result.counters[str(name)] = {
                tuple(str(v) for v in labels): float(value) for labels, value in rows
            }
        for name, rows in data["histograms"].items():
            result.histograms[str(name)] = {
                tuple(str(v) for v in labels): [float(b) for b in buckets]
                for labels, buckets in rows
            }
        return result
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadSnapshot(f"not a metrics snapshot: {exc}") from None
