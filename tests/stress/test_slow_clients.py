"""Slow partial-header connections (slowloris) must not starve real clients.

3,000 sockets on 127.0.0.1 send a request line and then trickle header lines without ever ending
the head; meanwhile ``/-/health`` and a page must keep answering quickly, and the server must
close the slow sockets once its header read timeout has passed (issue 17: before, /-/health
waited 30 s, Granian's default header timeout). Idle keep-alive connections are closed after the
same timeout. Sockets that never send a byte are part of the load but are not expected to be
closed: Granian (hyper) starts the header timer at the first byte.
"""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from cheeseboard.server.runner import HEADER_READ_TIMEOUT
from tests.support.server import CheeseboardServer
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.stress

SLOW = 3000
IDLE = 200  # connections that send nothing at all
KEEP_ALIVE = 200  # connections that made one request and then stay idle
LATENCY_BOUND = 2.0  # seconds for /-/health and a page while the slow sockets hang on
TRICKLE_EVERY = 1.0  # seconds between the header lines each slow socket sends


@contextlib.contextmanager
def _open_files(wanted: int) -> Iterator[None]:
    """Raise this process's soft file limit to ``wanted`` (within the hard limit) for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    assert target >= SLOW + IDLE + 100, f"the hard file limit ({hard}) is too low for the test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect(port: int, first: bytes) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", port))
        if first:
            sock.sendall(first)
    except OSError:
        sock.close()
        return None
    return sock


def _still_open(sockets: list[socket.socket], wait: float = 2.0) -> list[socket.socket]:
    """The sockets the server has not closed within ``wait`` seconds (EOF or reset is closed;
    an answer before the close, such as a 408, is read and ignored)."""
    pending = {sock.fileno(): sock for sock in sockets}
    for sock in sockets:
        sock.setblocking(False)
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + wait
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            try:
                data = pending[fd].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                poller.unregister(fd)
                del pending[fd]
    return list(pending.values())


def _timed_get(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        response.read()
    return time.monotonic() - started


class _Trickler:
    """Sends one more header line on every open slow socket every ``TRICKLE_EVERY`` seconds."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow: 1\r\n")
                    self.sent += 1

    def __enter__(self) -> _Trickler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_slow_header_connections_do_not_starve_real_clients(
    mirror_server: CheeseboardServer, html_upstream: UpstreamServer
) -> None:
    """3,000 slowloris sockets: /-/health and a page answer within 2 s, the sockets get closed."""
    health, page = f"{mirror_server.url}-/health", f"{mirror_server.url}+api"
    slow: list[socket.socket] = []
    idle: list[socket.socket] = []
    kept: list[socket.socket] = []
    with _open_files(SLOW + IDLE + KEEP_ALIVE + 1000):
        try:
            opened_at = time.monotonic()
            for _ in range(SLOW):
                sock = _connect(mirror_server.port, b"GET /root/pypi/+simple/ HTTP/1.1\r\n")
                if sock is not None:
                    slow.append(sock)
            for _ in range(IDLE):
                sock = _connect(mirror_server.port, b"")
                if sock is not None:
                    idle.append(sock)
            for _ in range(KEEP_ALIVE):
                sock = _connect(mirror_server.port, b"GET /-/health HTTP/1.1\r\nHost: t\r\n\r\n")
                if sock is not None and sock.recv(4096).startswith(b"HTTP/1.1 200"):
                    kept.append(sock)
            assert len(slow) >= SLOW * 0.95, f"only {len(slow)} slow connections opened"
            assert len(kept) >= KEEP_ALIVE * 0.95, f"only {len(kept)} keep-alive connections"
            latencies = []
            with _Trickler(slow) as trickler:
                deadline = opened_at + HEADER_READ_TIMEOUT + 5
                while time.monotonic() < deadline:
                    latencies.append(max(_timed_get(health), _timed_get(page)))
                    time.sleep(0.25)
            assert trickler.sent > len(slow)  # the slow sockets kept sending while we measured
            worst = max(latencies)
            assert worst < LATENCY_BOUND, f"slowest answer {worst:.2f} s under {len(slow)} slow"
            still_open = _still_open(slow + kept)
            assert not still_open, f"{len(still_open)} slow sockets still open after the timeout"
        finally:
            for sock in slow + idle + kept:
                sock.close()
    assert _timed_get(health) < LATENCY_BOUND
