"""/-/metrics on a real 2-worker server: the numbers of every scrape add up the requests sent,
whichever worker answers it (services/metrics.py, docs/metrics.md)."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from cheeseboard.services.metrics import PUBLISH_SECONDS
from tests.support.api import call, upload_dist
from tests.support.packages import Dist, build_wheel
from tests.support.server import ROOT_PASSWORD, ServerFactory
from tests.support.upstream import Fault, UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
_SAMPLE = re.compile(r"^(cheeseboard_[a-z_]+)(\{[^}]*\})? (\S+)$")
_UPSTREAM_COUNT = "cheeseboard_upstream_request_duration_seconds_count"
_WAIT_SECONDS = 15.0  # snapshots are published every second; a loaded machine is slower


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _scrape(url: str) -> tuple[str, dict[str, float]]:
    """The metrics text and its samples by series (name plus labels as rendered)."""
    with urllib.request.urlopen(url + "-/metrics", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return text, samples


def _file_url(server_url: str, index: str, dist: Dist) -> str:
    digest = dist.sha256
    return f"{server_url}{index}/+f/{digest[:3]}/{digest[3:16]}/{dist.filename}"


def test_scrapes_of_two_workers_add_up_the_requests_sent(
    server_factory: ServerFactory,
    html_upstream: UpstreamServer,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
) -> None:
    """Pages, files, a 404, a 502 (upstream failing), failed and throttled sign-ins and an
    upload, sent to a server with two workers, are counted exactly in every later scrape, by
    route class and status; so are upstream fetches by index, kind and outcome."""
    server = server_factory.start(
        html_upstream.simple_url, "--workers", "2", "--login-attempts", "2"
    )
    sent: Counter[tuple[str, int]] = Counter()
    body_bytes: Counter[str] = Counter()

    def fetch(route: str, url: str) -> int:
        status, body = _get(url)
        sent[(route, status)] += 1
        body_bytes[route] += len(body)
        return status

    wheel = dists["lib-c"][0]
    for _ in range(12):
        assert fetch("page", f"{server.index_url}lib-c/") == 200
    assert fetch("page", f"{server.url}nobody/nothing/+simple/lib-c/") == 404
    html_upstream.set_fault("simple/lib-a", Fault("status", status=503))
    try:
        assert fetch("page", f"{server.index_url}lib-a/") == 502  # nothing cached: 502
    finally:
        html_upstream.set_fault("simple/lib-a", None)
    for _ in range(8):
        assert fetch("file", _file_url(server.url, "root/pypi", wheel)) == 200
    assert call(server.url, "PUT", "/root/dev", {"bases": []}, auth=ROOT)[0] == 200
    sent[("api", 200)] += 1
    mine = build_wheel(tmp_path, "metered", "1.0", payload_size=20_000)
    assert upload_dist(server.url, "root/dev", mine, ROOT)[0] == 200
    sent[("upload", 200)] += 1
    # Sign-in limits are counted per worker: fail until one worker says 429.
    logins: Counter[int] = Counter()
    while logins[429] == 0 and sum(logins.values()) < 20:
        status = call(server.url, "POST", "/+login", {"user": "root", "password": "wrong"})[0]
        logins[status] += 1
    assert set(logins) == {401, 429}, logins
    sent[("api", 401)] += logins[401]
    sent[("api", 429)] += logins[429]

    def mismatches(samples: dict[str, float]) -> list[str]:
        wrong = []
        for (route, status), number in sent.items():
            series = f'cheeseboard_http_requests_total{{route="{route}",status="{status}"}}'
            if samples.get(series) != number:
                wrong.append(f"{series}: {samples.get(series)} != {number}")
        for route in ("page", "file"):
            series = f'cheeseboard_http_response_bytes_total{{route="{route}"}}'
            if samples.get(series) != body_bytes[route]:
                wrong.append(f"{series}: {samples.get(series)} != {body_bytes[route]}")
        expected = {
            "cheeseboard_uploads_total": 1,
            "cheeseboard_upload_bytes_total": mine.size,
            "cheeseboard_login_failures_total": logins[401],
            "cheeseboard_login_throttled_total": logins[429],
            "cheeseboard_workers": 2,
            f'{_UPSTREAM_COUNT}{{index="root/pypi",kind="page",outcome="ok"}}': 1,
            f'{_UPSTREAM_COUNT}{{index="root/pypi",kind="file",outcome="ok"}}': 1,
            f'{_UPSTREAM_COUNT}{{index="root/pypi",kind="page",outcome="error"}}': 1,
            'cheeseboard_upstream_errors_total{index="root/pypi",kind="page"}': 1,
            "cheeseboard_file_cache_hits_total+misses": 8,
        }
        samples["cheeseboard_file_cache_hits_total+misses"] = samples.get(
            "cheeseboard_file_cache_hits_total", 0
        ) + samples.get("cheeseboard_file_cache_misses_total", 0)
        wrong += [
            f"{name}: {samples.get(name)} != {value}"
            for name, value in expected.items()
            if samples.get(name) != value
        ]
        return wrong

    deadline = time.monotonic() + _WAIT_SECONDS
    while mismatches(_scrape(server.url)[1]) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The worker that answered counts its own requests live; the other one's snapshot may
    # still be a publication behind: wait out one more.
    time.sleep(2 * PUBLISH_SECONDS)
    logged_before = len(server.log())
    for _ in range(30):
        text, samples = _scrape(server.url)
        wrong = mismatches(samples)
        assert wrong == [], "\n".join(wrong)
        # Histograms: cumulative buckets, +Inf equals the count.
        page = 'route="page",status="200"'
        bucket = f"cheeseboard_http_request_duration_seconds_bucket{{{page},le="
        buckets = [v for k, v in samples.items() if k.startswith(bucket)]
        assert buckets == sorted(buckets)
        assert samples[bucket + '"+Inf"}'] == sent[("page", 200)]
        assert samples[f"cheeseboard_http_request_duration_seconds_count{{{page}}}"] == 12
        assert samples["cheeseboard_file_cache_misses_total"] >= 1  # the first download
        hits = samples["cheeseboard_page_cache_hits_total"]
        misses = samples["cheeseboard_page_cache_misses_total"]
        assert hits >= 1 and misses >= 1 and hits + misses >= 12  # others may peek too
        assert samples["cheeseboard_blob_store_files"] >= 2  # the mirrored and the uploaded
        assert samples["cheeseboard_blob_store_bytes"] >= mine.size + wheel.size
        assert samples["cheeseboard_database_bytes"] > 0
        assert samples["cheeseboard_serial"] >= 2
        assert "/nobody/" not in text and "lib-c" not in text  # no path or project in labels
    # Both workers answered scrapes (the access log names the worker of each request).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        workers = set(re.findall(r'worker=(\d+) .*path="/-/metrics"', server.log()[logged_before:]))
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    assert len(workers) == 2, server.log()[-2000:]

    # SIGHUP makes Granian replace its workers: the new ones' scrapes keep the old ones' counts
    # (folded into the retired total), so no counter goes backwards.
    assert server.process is not None
    logged_before = len(server.log())
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + _WAIT_SECONDS
    while True:
        text, samples = _scrape(server.url)
        answered_by = set(
            re.findall(r'worker=(\d+) .*path="/-/metrics"', server.log()[logged_before:])
        )
        published = [p.name for p in server.datadir.glob("run/metrics/*/*.json")]
        old_files = [name for name in published if name.split("-")[0] in workers]
        # Done when both new workers have answered and the old ones' files are retired.
        done = len(answered_by - workers) == 2 and "retired.json" in published and not old_files
        if done and not mismatches(samples):
            break
        assert time.monotonic() < deadline, "\n".join(mismatches(samples)) + server.log()[-2000:]
        time.sleep(0.2)
    assert mismatches(_scrape(server.url)[1]) == []
