"""The metrics registry, the merge of workers' snapshots and the Prometheus text."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from cheeseboard.core import metrics
from cheeseboard.core.metrics import FAMILIES, REQUEST_BUCKETS, Snapshot, merge
from cheeseboard.core.metrics_text import BadSnapshot, dumps, escape_label, loads, render


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


def _line(text: str, series: str) -> float:
    """The value of the one sample line ``series`` (name and labels exactly as rendered)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {series} in:\n{text}")


def test_request_histogram_is_cumulative_with_count_and_sum() -> None:
    """Buckets are rendered cumulatively (le), +Inf equals _count, _sum adds the seconds."""
    for seconds in (0.0001, 0.0004, 0.003, 0.2, 42.0):
        metrics.observe_request("page", 200, seconds, 10)
    text = render(metrics.snapshot(), {})
    prefix = 'cheeseboard_http_request_duration_seconds_bucket{route="page",status="200",'
    assert _line(text, prefix + 'le="0.0005"}') == 2
    assert _line(text, prefix + 'le="0.005"}') == 3
    assert _line(text, prefix + 'le="0.25"}') == 4
    assert _line(text, prefix + 'le="10"}') == 4
    assert _line(text, prefix + 'le="+Inf"}') == 5
    labels = '{route="page",status="200"}'
    assert _line(text, "cheeseboard_http_request_duration_seconds_count" + labels) == 5
    assert _line(text, "cheeseboard_http_requests_total" + labels) == 5
    assert _line(text, "cheeseboard_http_request_duration_seconds_sum" + labels) == pytest.approx(
        42.2035
    )
    assert _line(text, 'cheeseboard_http_response_bytes_total{route="page"}') == 50
    bounds = re.findall(r'le="([^"]+)"', text)
    assert bounds[: len(REQUEST_BUCKETS) + 1][-1] == "+Inf"


def test_merge_adds_counters_and_buckets_of_workers() -> None:
    """Two workers' snapshots add up label by label and bucket by bucket."""
    metrics.observe_request("file", 200, 0.001, 100)
    metrics.count("uploads_total")
    first = loads(dumps(metrics.snapshot()))
    metrics.reset()
    metrics.observe_request("file", 200, 2.0, 50)
    metrics.observe_request("file", 404, 0.001, 0)
    metrics.count("uploads_total", 2)
    second = metrics.snapshot()
    total = merge([first, second])
    assert total.counters["uploads_total"][()] == 3
    assert total.counters["http_requests_total"][("file", "200")] == 2
    assert total.counters["http_requests_total"][("file", "404")] == 1
    assert total.counters["http_response_bytes_total"][("file",)] == 150
    buckets = total.histograms["http_request_duration_seconds"][("file", "200")]
    assert sum(buckets[:-1]) == 2
    assert buckets[-1] == pytest.approx(2.001)


def test_merge_skips_histograms_of_another_bucket_layout() -> None:
    """A snapshot whose histogram has other buckets (another version) is not misread."""
    odd = Snapshot(histograms={"http_request_duration_seconds": {("page", "200"): [1.0, 2.0]}})
    metrics.observe_request("page", 200, 0.001, 1)
    total = merge([metrics.snapshot(), odd])
    assert sum(total.histograms["http_request_duration_seconds"][("page", "200")][:-1]) == 1


def test_label_values_are_escaped() -> None:
    """Backslash, quote and newline in a label value are escaped, nothing else."""
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    metrics.observe_upstream('we"ird\\index\n', "page", "error", 0.02)
    text = render(metrics.snapshot(), {})
    assert 'cheeseboard_upstream_errors_total{index="we\\"ird\\\\index\\n",kind="page"} 1' in text


def test_every_family_has_help_and_type_and_unlabelled_counters_start_at_zero() -> None:
    """Each family is announced once; a counter never counted shows 0; gauges as given."""
    text = render(Snapshot(), {"serial": 7, "database_bytes": 4096})
    for family in FAMILIES.values():
        assert text.count(f"# TYPE cheeseboard_{family.name} {family.kind}\n") == 1
        assert f"# HELP cheeseboard_{family.name} " in text
    assert _line(text, "cheeseboard_login_failures_total") == 0
    assert _line(text, "cheeseboard_serial") == 7
    assert _line(text, "cheeseboard_database_bytes") == 4096


def test_status_label_is_bounded() -> None:
    """Only real HTTP status codes become label values."""
    assert metrics.status_label(404) == "404"
    assert metrics.status_label(0) == "other"
    assert metrics.status_label(1000) == "other"


def test_loads_refuses_what_is_not_a_snapshot() -> None:
    """Foreign or damaged bytes in the run directory are refused with a clear error."""
    for raw in (b"", b"[]", b'{"format": 99}', b'{"format": 1, "counters": 3}'):
        with pytest.raises(BadSnapshot):
            loads(raw)
