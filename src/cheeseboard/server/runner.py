"""Running the HTTP server: migrate once in the parent, then Granian workers serve the app."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import resource
import uuid

from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.server.mp import MPServer

from cheeseboard.http.app import SETTINGS_ENV
from cheeseboard.settings import Settings
from cheeseboard.store.blobs import FileBlobStore
from cheeseboard.store.db import migrate

log = logging.getLogger("cheeseboard.server")

# Granian's HTTP/1 read buffer, which bounds the request line plus all headers: past it the
# answer is 431 before any app code runs (hyper also caps a request at 100 headers). Granian's
# default, ~400 KiB, let a 100 KB header through to the app; 64 KiB is still far above real
# clients' heads (long tokens and cookies included) and above what nginx (8 KiB a line) or h11
# (16 KiB) accept. Bodies are read in chunks of at most this size: no measurable upload cost.
HTTP1_MAX_BUFFER = 64 * 1024

# Seconds a client has to send a request's head (line and headers), from the moment the server
# starts waiting for it; then the connection is closed. Real clients need milliseconds, even over
# slow links (a head is a few hundred bytes). Granian's default, 30 s, let 3,000 slowloris sockets
# hold every connection slot for 30 s, and /-/health waited that long (issue 17).
HEADER_READ_TIMEOUT = 10

# File descriptors each worker keeps for its own use beyond client connections: the database,
# blobs being read or written, upstream and S3 connections, logs.
_RESERVED_FILES = 512
_MIN_CONNECTIONS = 1024
_MAX_OPEN_FILES = 65536


def connection_limit() -> int:
    """Concurrent connections per worker (Granian's ``backpressure``): as many as the file limit
    allows after raising its soft value to the hard one, minus what the worker needs itself.

    Granian holds one slot per connection until it closes, so a slot count below what slow
    clients can open lets them lock everyone out until their header timeout ends; a count above
    the file limit would make ``accept`` fail instead (EMFILE). Connections beyond the limit wait
    in the listen backlog.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, _MAX_OPEN_FILES)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # workers inherit it
            soft = wanted
        except (ValueError, OSError):
            pass  # keep the soft limit we have
    return max(_MIN_CONNECTIONS, soft - _RESERVED_FILES)


class _Server(MPServer):
    """Granian with a stop-signal handler that tolerates a second signal.

    Granian's handler sets a ``threading.Event``, which is not re-entrant: a second SIGTERM or
    SIGINT arriving while the first handler holds the event's lock deadlocks the main process.
    That happens in practice: ``make`` forwards a fatal signal to its children, so a ``make run``
    stopped by signal delivers two; people also press Ctrl-C twice.
    """

    def signal_handler_interrupt(self, *args: object, **kwargs: object) -> None:
        if self.interrupt_signal:
            return  # a stop is already under way
        super().signal_handler_interrupt(*args, **kwargs)  # type: ignore[no-untyped-call]


class StorageError(Exception):
    """The bucket of --blob-url cannot be used; the message says why."""


async def check_bucket(url: str, ca_bundle: str | None = None) -> None:
    """Fail before serving, with the reason, if the bucket cannot be written and read."""
    from cheeseboard.store.s3 import S3Client, S3Error, S3Location  # aiohttp: only for a bucket

    location = S3Location.from_url(url)
    async with S3Client(location, timeout=10, ca_bundle=ca_bundle) as client:
        probe = f".cheeseboard-probe-{uuid.uuid4().hex}"
        try:
            await client.put_bytes(probe, b"ok")
            if await client.get_bytes(probe) != b"ok":
                raise StorageError(f"{location.redacted()} returned other bytes than were put")
            await client.delete(probe)
        except S3Error as exc:
            raise StorageError(f"cannot use {location.redacted()}: {exc}") from None


def event_loop() -> Loops:
    """uvloop where it is installed (the server extra brings it on Linux and macOS), else
    asyncio's own loop. uvloop served 20% more cached small files and 12% more cached pages per
    worker (issue 19); the choice is logged at start so a slower host can tell why."""
    return Loops.uvloop if importlib.util.find_spec("uvloop") is not None else Loops.asyncio


def run(settings: Settings) -> None:
    migrate(settings.db_url)
    if settings.blob_url:
        asyncio.run(check_bucket(settings.blob_url, settings.ca_bundle))
    leftovers = FileBlobStore(settings.layout.blobs).clean_tmp()
    if leftovers:
        log.info("removed %d unfinished staged files", leftovers)
    os.environ[SETTINGS_ENV] = settings.to_json()
    # What start-up made lives as long as the process: the collector need not walk it again,
    # here or in the forked workers, and its pages stay shared with them (server/start.py).
    gc.freeze()
    connections = connection_limit()
    loop = event_loop()
    log.info(
        "serving %s on http://%s:%d/ with %d worker(s), up to %d connections each, %s loop",
        settings.datadir,
        settings.host,
        settings.port,
        settings.workers,
        connections,
        loop.value,
    )
    _Server(
        "cheeseboard.http.app:app_from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        loop=loop,
        workers=settings.workers,
        log_access=False,  # our own AccessLog middleware writes one line per request
        log_level=settings.log_level,  # type: ignore[arg-type]
        backlog=2048,
        backpressure=connections,
        http1_settings=HTTP1Settings(
            max_buffer_size=HTTP1_MAX_BUFFER, header_read_timeout=HEADER_READ_TIMEOUT * 1000
        ),
    ).serve()
