"""Big uploads stream with flat memory, --max-upload-size refuses more, and all workers agree.

The 300 MiB upload is sent from a generator over ``http.client`` so neither the test nor the
server ever holds the file; a thread samples the worker's RSS from /proc while it streams.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import basic, call, reset_accounts, twine_upload
from tests.support.packages import Dist, build_wheel, dist_name, normalize
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

MiB = 1024 * 1024
BIG_PAYLOAD = 300 * MiB
GROWTH_LIMIT = 50 * MiB
SAMPLE_SECONDS = 0.05
LIMIT = 10_000_000  # --max-upload-size of the limit tests
ROOT = ("root", ROOT_PASSWORD)
LOCAL = ("local", "local-secret")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
JSON = "application/vnd.pypi.simple.v1+json"
BOUNDARY = "cheeseboard-upload-limits-8d0f2c"
FRESH_REQUESTS = 20


# --- the server's processes, seen through /proc ------------------------------------------------


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (the Granian workers of a server's main process)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def _workers(server: CheeseboardServer, expected: int) -> list[int]:
    assert server.process is not None
    deadline = time.monotonic() + 10
    while len(workers := _children(server.process.pid)) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(workers) == expected, f"workers {workers} of {server.process.pid}"
    return workers


def _status_bytes(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Sums the RSS of ``pids`` every ``interval`` seconds in a thread, until the block ends."""

    def __init__(self, pids: list[int], interval: float = SAMPLE_SECONDS) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[int] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> int:
        return sum(_status_bytes(pid, "VmRSS") for pid in self.pids)

    def _run(self) -> None:
        while True:
            try:
                self.samples.append(self.sample())
            except (OSError, AssertionError) as exc:  # a worker died: the test reports it
                self.error = repr(exc)
                return
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- uploads with http.client -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the server answered (status None: no answer, the connection was cut)."""

    status: int | None
    text: str
    seconds: float
    send_error: str | None


def _form(dist: Dist) -> dict[str, str]:
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": dist.name,
        "version": dist.version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": dist.sha256,
    }


def _envelope(dist: Dist) -> tuple[bytes, bytes]:
    """The multipart bytes before and after the file's own bytes."""
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in _form(dist).items()
    )
    head += (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="content"; filename="{dist.filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def _streamed(head: bytes, path: Path, tail: bytes) -> Generator[bytes, None, None]:
    yield head
    with path.open("rb") as file:
        while chunk := file.read(MiB):
            yield chunk
    yield tail


def _post(
    server: CheeseboardServer, body: Iterator[bytes], length: int | None, chunked: bool = False
) -> Reply:
    """POST the multipart ``body`` to local/stable as ``local`` (``length`` declared unless
    None); a refusal mid-body is recorded and the answer still read."""
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Authorization": basic(*LOCAL),
    }
    if length is not None:
        headers["Content-Length"] = str(length)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.monotonic()
    send_error = None
    try:
        try:
            connection.request(
                "POST", "/local/stable/", body=body, headers=headers, encode_chunked=chunked
            )
        except (BrokenPipeError, ConnectionResetError) as exc:
            send_error = repr(exc)  # refused mid-body; the answer may still be readable
        try:
            response = connection.getresponse()
            status, text = response.status, response.read().decode(errors="replace")
        except (ConnectionError, http.client.HTTPException) as exc:
            return Reply(None, repr(exc), time.monotonic() - started, send_error)
    finally:
        connection.close()
    return Reply(status, text, time.monotonic() - started, send_error)


def _upload(server: CheeseboardServer, dist: Dist, *, chunked: bool = False) -> Reply:
    """POST ``dist`` to local/stable in 1 MiB chunks, with a Content-Length unless ``chunked``."""
    head, tail = _envelope(dist)
    length = None if chunked else len(head) + dist.size + len(tail)
    body = _streamed(head, dist.path, tail)
    try:
        return _post(server, body, length, chunked)
    finally:
        body.close()


def _get(server: CheeseboardServer, path: str, accept: str = "text/html") -> tuple[int, str]:
    """One GET on a fresh connection (so consecutive calls spread over the workers)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept": accept})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def _setup_local_stable(server: CheeseboardServer, **config: str) -> None:
    """User ``local`` and non-volatile index ``local/stable`` (bases root/pypi), made by root."""
    status, body = call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)
    assert status == 201, body
    status, body = call(
        server.url, "PUT", "/local/stable", {"bases": "root/pypi", **config}, auth=ROOT
    )
    assert status == 200, body


def _stored_files_over(datadir: Path, size: int) -> list[Path]:
    return [path for path in datadir.rglob("*") if path.is_file() and path.stat().st_size > size]


def _logged_workers(server: CheeseboardServer, path: str, count: int, since: int = 0) -> list[str]:
    """The ``worker=`` of each access-log line for ``path`` after ``since`` characters of the
    log, once ``count`` of them are there: the access log is flushed every 200 ms, so this
    waits for the flush (up to 10 s) rather than sleeping."""
    deadline = time.monotonic() + 10
    while True:
        workers = [
            line.split()[1]
            for line in server.log()[since:].splitlines()
            if f'path="{path}"' in line and "worker=" in line
        ]
        if len(workers) >= count or time.monotonic() > deadline:
            return workers
        time.sleep(0.05)


def _served_by(server: CheeseboardServer, path: str, count: int) -> Counter[str]:
    """How many logged requests for ``path`` each worker served, once ``count`` are logged."""
    return Counter(_logged_workers(server, path, count))


# --- 300 MiB with flat memory -------------------------------------------------------------------


def _streamed_wheel(dest: Path, name: str, version: str, payload_size: int) -> Dist:
    """A real wheel with ``payload_size`` seeded random bytes, written to disk a MiB at a time.

    ``build_wheel`` makes its payload with one ``Random.randbytes`` call, which overflows past
    256 MiB (``getrandbits`` takes a C int of bits) and would hold the whole file in memory.
    """
    mod, base = dist_name(name), f"{dist_name(name)}-{version}"
    dist_info = f"{base}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: big\n".encode()
    small = {
        f"{mod}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    filename = f"{base}-py3-none-any.whl"
    path = dest / filename
    record = []
    rng = random.Random(f"{name}=={version}")
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in small.items():
            wheel.writestr(zipfile.ZipInfo(member, _ZIP_TIME), data, zipfile.ZIP_DEFLATED)
            record.append(f"{member},{_record_hash(hashlib.sha256(data))},{len(data)}")
        payload = f"{mod}/payload.bin"
        digest, left = hashlib.sha256(), payload_size
        with wheel.open(zipfile.ZipInfo(payload, _ZIP_TIME), "w", force_zip64=True) as out:
            while left:
                chunk = rng.randbytes(min(MiB, left))
                out.write(chunk)
                digest.update(chunk)
                left -= len(chunk)
        record += [f"{payload},{_record_hash(digest)},{payload_size}", f"{dist_info}/RECORD,,"]
        wheel.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", _ZIP_TIME), "\n".join(record) + "\n")
    with path.open("rb") as file:
        sha256 = hashlib.file_digest(file, "sha256").hexdigest()
    return Dist(
        path=path,
        filename=filename,
        name=name,
        version=version,
        kind="wheel",
        sha256=sha256,
        size=path.stat().st_size,
        metadata=metadata,
        requires_python=None,
    )


def _record_hash(digest: Any) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def big_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dist]:
    """A real wheel carrying 300 MiB of incompressible payload, built once for the module."""
    dist = _streamed_wheel(tmp_path_factory.mktemp("big"), "big-payload", "1.0", BIG_PAYLOAD)
    yield dist
    dist.path.unlink()  # pytest keeps the last runs' temporary directories


def test_300_mb_upload_keeps_worker_memory_flat(
    server_factory: ServerFactory, html_upstream: UpstreamServer, big_wheel: Dist, tmp_path: Path
) -> None:
    """A 300 MiB upload streams through one worker whose RSS grows by less than 50 MiB."""
    server = server_factory.start(html_upstream.simple_url, "--workers", "1")
    _setup_local_stable(server)
    # Warm the upload path (imports, first blob, first page) so the baseline holds the code.
    small = build_wheel(tmp_path / "small", "warm-up", "1.0", payload_size=MiB)
    assert _upload(server, small).status == 200
    assert _get(server, "/local/stable/+simple/warm-up/")[0] == 200
    workers = _workers(server, 1)
    exact_peak = all(_reset_peak(pid) for pid in workers)
    with RssSampler(workers) as sampler:
        time.sleep(4 * SAMPLE_SECONDS)
        baseline = max(sampler.samples)
        reply = _upload(server, big_wheel)
        time.sleep(2 * SAMPLE_SECONDS)  # what the worker holds right after answering counts too
    assert sampler.error is None, sampler.error
    assert reply.status == 200, (reply, server.log()[-3000:])
    served = _served_by(server, "/local/stable/", 2)  # the warm-up upload and this one
    assert sum(served.values()) == 2, served
    assert set(served) <= {f"worker={pid}" for pid in workers}, (served, workers)
    peak = max(sampler.samples)
    growth = peak - baseline
    hwm_growth = sum(_status_bytes(pid, "VmHWM") for pid in workers) - baseline
    measured = (
        f"300 MiB upload ({big_wheel.size / MiB:.1f} MiB file) in {reply.seconds:.2f} s "
        f"({big_wheel.size / MiB / reply.seconds:.0f} MiB/s): worker RSS baseline "
        f"{baseline / MiB:.1f} MiB, sampled peak {peak / MiB:.1f} MiB, peak growth "
        f"{growth / MiB:.1f} MiB over {len(sampler.samples)} samples every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms"
        + (f"; VmHWM growth {hwm_growth / MiB:.1f} MiB" if exact_peak else "; VmHWM not resettable")
    )
    print("\n" + measured)
    assert len(sampler.samples) >= 10, measured
    assert growth < GROWTH_LIMIT, measured
    if exact_peak:  # the kernel's own peak, which no sampling interval can miss
        assert hwm_growth < GROWTH_LIMIT, measured
    status, body = _get(server, "/local/stable/+simple/big-payload/", JSON)
    assert status == 200, body
    files = {f["filename"]: f for f in json.loads(body)["files"]}
    assert files[big_wheel.filename]["hashes"]["sha256"] == big_wheel.sha256
    assert files[big_wheel.filename]["size"] == big_wheel.size
    server.stop()
    shutil.rmtree(server.datadir)  # the stored 300 MiB; pytest keeps the last runs' tmp_path


# --- --max-upload-size ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, CheeseboardServer]]:
    """The module's shared servers: ``limited`` refuses uploads over 10 MB, ``one_worker`` runs
    a single worker (whose memory the form-field tests watch)."""
    with UpstreamServer(mode="html") as upstream:
        factory = ServerFactory(tmp_path_factory.mktemp("upload-limits"))
        try:
            yield {
                "limited": factory.start(
                    upstream.simple_url, "--max-upload-size", str(LIMIT), name="limited"
                ),
                "one_worker": factory.start(
                    upstream.simple_url, "--workers", "1", name="one-worker"
                ),
            }
        finally:
            factory.stop_all()


def _shared(server: CheeseboardServer) -> Iterator[CheeseboardServer]:
    """``server`` with local/stable ready; every user and index but root's deleted after."""
    _setup_local_stable(server)
    yield server
    reset_accounts(server.url, ROOT)


@pytest.fixture
def limited_server(
    module_servers: dict[str, CheeseboardServer],
) -> Iterator[CheeseboardServer]:
    """A server refusing uploads over 10 MB, with local/stable ready."""
    yield from _shared(module_servers["limited"])


@pytest.fixture
def one_worker_server(
    module_servers: dict[str, CheeseboardServer],
) -> Iterator[CheeseboardServer]:
    """A server with one worker, with local/stable ready."""
    yield from _shared(module_servers["one_worker"])


def _assert_nothing_stored(server: CheeseboardServer, dist: Dist, before: set[Path]) -> None:
    """``dist`` is not listed, and no file over half the limit was stored since ``before``."""
    status, body = _get(server, f"/local/stable/+simple/{normalize(dist.name)}/")
    assert status == 404, body
    assert set(_stored_files_over(server.datadir, LIMIT // 2)) - before == set()


def test_max_upload_size_refuses_declared_length(
    limited_server: CheeseboardServer, tmp_path: Path
) -> None:
    """A 20 MB upload with its Content-Length gets 413 and stores nothing; 5 MB still passes."""
    before = set(_stored_files_over(limited_server.datadir, LIMIT // 2))
    too_big = build_wheel(tmp_path / "big", "too-big", "1.0", payload_size=2 * LIMIT)
    reply = _upload(limited_server, too_big)
    assert reply.status == 413, (reply, limited_server.log()[-3000:])
    assert "limit" in reply.text
    print(f"\n20 MB with Content-Length: {reply}")
    _assert_nothing_stored(limited_server, too_big, before)
    # Declared within the form allowance, but the file itself is past the limit.
    just_over = build_wheel(tmp_path / "over", "just-over", "1.0", payload_size=LIMIT + 100_000)
    reply = _upload(limited_server, just_over)
    assert reply.status == 413, reply
    assert "limit" in reply.text
    _assert_nothing_stored(limited_server, just_over, before)
    fits = build_wheel(tmp_path / "fits", "fits", "1.0", payload_size=LIMIT // 2)
    reply = _upload(limited_server, fits)
    assert reply.status == 200, reply
    status, body = _get(limited_server, "/local/stable/+simple/fits/", JSON)
    assert status == 200, body
    assert [f["hashes"]["sha256"] for f in json.loads(body)["files"]] == [fits.sha256]


def test_max_upload_size_refuses_chunked_body(
    limited_server: CheeseboardServer, tmp_path: Path
) -> None:
    """A 20 MB chunked body (no Content-Length) gets 413 or a cut connection, never stored."""
    before = set(_stored_files_over(limited_server.datadir, LIMIT // 2))
    too_big = build_wheel(tmp_path / "big", "too-big", "1.0", payload_size=2 * LIMIT)
    reply = _upload(limited_server, too_big, chunked=True)
    print(f"\n20 MB chunked: {reply}")
    assert reply.status in (413, None), reply
    _assert_nothing_stored(limited_server, too_big, before)
    # The refusal left the worker serving: a small chunked upload is stored.
    fits = build_wheel(tmp_path / "fits", "fits", "1.0", payload_size=MiB)
    reply = _upload(limited_server, fits, chunked=True)
    assert reply.status == 200, reply
    assert _get(limited_server, "/local/stable/+simple/fits/")[0] == 200


# --- non-file form fields ------------------------------------------------------------------------

FIELD_BYTES = 1_000_000  # each field just under the 1 MiB a single field may hold
FIELD_COUNT = 60  # 60 MB of fields in all, far past the 8 MiB they may hold together
FIELD_GROWTH_LIMIT = 25 * MiB


def _field_parts(count: int, size: int, name: str) -> tuple[list[bytes], int]:
    """Multipart parts for ``count`` text fields ``name<i>`` of ``size`` bytes, and their total
    length; the 1 MiB filler chunk is shared, so the test holds it once."""
    filler = b"x" * min(size, MiB)
    parts: list[bytes] = []
    for number in range(count):
        field = name if count == 1 else f"{name}{number}"
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'.encode()
        )
        left = size
        while left:
            parts.append(filler[:left])
            left -= min(left, len(filler))
        parts.append(b"\r\n")
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return parts, sum(len(part) for part in parts)


def _post_fields(server: CheeseboardServer, parts: list[bytes], length: int) -> Reply:
    """POST the multipart ``parts`` (``length`` bytes declared) to local/stable as ``local``."""
    return _post(server, iter(parts), length)


@pytest.mark.parametrize(
    ("count", "size", "name", "words"),
    [
        (1, 50 * 1000 * 1000, "description", "form field 'description' is larger than 1048576"),
        (FIELD_COUNT, FIELD_BYTES, "Classifier", "larger than 8388608 bytes in total"),
    ],
    ids=["one-50MB-field", "60-fields-of-1MB"],
)
def test_form_fields_are_bounded(
    one_worker_server: CheeseboardServer,
    tmp_path: Path,
    count: int,
    size: int,
    name: str,
    words: str,
) -> None:
    """Non-file fields past 1 MiB each or 8 MiB in all get 413 naming the field, and the worker
    never holds them: its RSS grows by far less than the 50-60 MB sent."""
    server = one_worker_server
    small = build_wheel(tmp_path / "small", "warm-up", "1.0")
    assert _upload(server, small).status == 200  # the upload path's code is in the baseline
    workers = _workers(server, 1)
    exact_peak = all(_reset_peak(pid) for pid in workers)
    parts, length = _field_parts(count, size, name)
    with RssSampler(workers) as sampler:
        time.sleep(4 * SAMPLE_SECONDS)
        baseline = max(sampler.samples)
        reply = _post_fields(server, parts, length)
        time.sleep(2 * SAMPLE_SECONDS)
    assert sampler.error is None, sampler.error
    growth = max(sampler.samples) - baseline
    hwm_growth = sum(_status_bytes(pid, "VmHWM") for pid in workers) - baseline
    measured = (
        f"{count} field(s) of {size / MiB:.1f} MiB ({length / MiB:.1f} MiB body): {reply.status} "
        f"in {reply.seconds:.2f} s (send error: {reply.send_error}); worker RSS baseline "
        f"{baseline / MiB:.1f} MiB, sampled growth {growth / MiB:.1f} MiB"
        + (f", VmHWM growth {hwm_growth / MiB:.1f} MiB" if exact_peak else "")
    )
    print("\n" + measured)
    assert reply.status == 413, (measured, reply.text)
    assert words in reply.text, reply.text
    assert growth < FIELD_GROWTH_LIMIT, measured
    if exact_peak:
        assert hwm_growth < FIELD_GROWTH_LIMIT, measured
    assert _get(server, "/local/stable/+simple/warm-up/")[0] == 200  # still serving
    fits = build_wheel(tmp_path / "fits", "fits", "1.0")
    assert _upload(server, fits).status == 200


# --- several workers, one truth -----------------------------------------------------------------


def _two_workers(
    server_factory: ServerFactory, upstream: UpstreamServer, **config: str
) -> CheeseboardServer:
    """local/stable made on a one-worker server, then the same datadir served by two workers.

    Accounts are created before the second worker exists: a worker only catches up with the
    other's account changes when it serves a page (test_workers_see_account_changes_at_once).
    """
    setup = server_factory.start(upstream.simple_url, name="shared")
    _setup_local_stable(setup, **config)
    setup.stop()
    server = server_factory.start(upstream.simple_url, "--workers", "2", name="shared")
    _workers(server, 2)
    return server


def _fresh_round(
    server: CheeseboardServer, path: str, accept: str = "text/html"
) -> tuple[list[tuple[int, str]], set[str]]:
    """FRESH_REQUESTS GETs of ``path`` on new connections, and the workers that served them."""
    logged = len(server.log())
    replies = [_get(server, path, accept) for _ in range(FRESH_REQUESTS)]
    return replies, set(_logged_workers(server, path, FRESH_REQUESTS, since=logged))


def _assert_every_page(
    server: CheeseboardServer,
    path: str,
    status: int,
    shows: set[str],
    hides: frozenset[str] = frozenset(),
) -> None:
    """Every fresh GET of ``path`` answers ``status``, lists ``shows`` and none of ``hides``."""
    replies, workers = _fresh_round(server, path)
    for number, (got, body) in enumerate(replies, 1):
        seen = {name for name in shows | hides if name in body}
        assert (got, seen) == (status, shows), f"request {number} of {len(replies)}: {body}"
    assert len(workers) == 2, f"only {workers} answered {path}; the test needs both workers"


def _assert_every_config(server: CheeseboardServer, path: str, expected: dict[str, Any]) -> None:
    """Every fresh GET of a user or index answers 200 with ``expected`` in its result."""
    replies, workers = _fresh_round(server, path, "application/json")
    for number, (got, body) in enumerate(replies, 1):
        assert got == 200, f"request {number} of {len(replies)}: {got} {body}"
        result = json.loads(body)["result"]
        assert {key: result.get(key) for key in expected} == expected, (number, result)
    assert len(workers) == 2, f"only {workers} answered {path}; the test needs both workers"


def test_workers_see_uploads_at_once(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """With two workers, every request right after an upload lists the new file."""
    server = _two_workers(server_factory, html_upstream)
    first = build_wheel(tmp_path / "dist", "multi-worker", "1.0")
    second = build_wheel(tmp_path / "dist", "multi-worker", "2.0")
    path = "/local/stable/+simple/multi-worker/"
    url = f"{server.url}local/stable/"
    # Both workers hold "absent" first, so what follows is an invalidation, not a first build.
    _assert_every_page(server, path, 404, set(), frozenset({first.filename}))
    result = twine_upload(url, *LOCAL, first.path)
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_every_page(server, path, 200, {first.filename}, frozenset({second.filename}))
    result = twine_upload(url, *LOCAL, second.path)
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_every_page(server, path, 200, {first.filename, second.filename})


def test_workers_see_whitelist_change_at_once(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """With two workers, every request right after a mirror_whitelist PATCH shows its effect."""
    public = build_wheel(tmp_path / "public", "shared-name", "1.0")
    html_upstream.add(public)
    server = _two_workers(server_factory, html_upstream, allow_upstream_names="True")
    private = build_wheel(tmp_path / "private", "shared-name", "9.0")
    result = twine_upload(f"{server.url}local/stable/", *LOCAL, private.path)
    assert result.returncode == 0, result.stdout + result.stderr
    path = "/local/stable/+simple/shared-name/"
    both = {private.filename, public.filename}
    _assert_every_page(server, path, 200, {private.filename}, frozenset({public.filename}))
    status, body = call(
        server.url, "PATCH", "/local/stable", ["mirror_whitelist+=shared-name"], auth=LOCAL
    )
    assert status == 200, body
    assert body["result"]["mirror_whitelist"] == ["shared-name"]
    _assert_every_page(server, path, 200, both)
    status, body = call(
        server.url, "PATCH", "/local/stable", ["mirror_whitelist-=shared-name"], auth=LOCAL
    )
    assert status == 200, body
    _assert_every_page(server, path, 200, {private.filename}, frozenset({public.filename}))


def test_workers_see_account_changes_at_once(
    server_factory: ServerFactory, html_upstream: UpstreamServer
) -> None:
    """With two workers, every request right after creating a user or index finds it."""
    server = server_factory.start(html_upstream.simple_url, "--workers", "2")
    _workers(server, 2)
    status, body = call(server.url, "PUT", "/local", {"password": LOCAL[1]}, auth=ROOT)
    assert status == 201, body
    _assert_every_config(server, "/local", {"username": "local"})
    status, body = call(server.url, "PUT", "/local/stable", {"bases": "root/pypi"}, auth=ROOT)
    assert status == 200, body
    _assert_every_config(server, "/local/stable", {"bases": ["root/pypi"]})
    status, body = call(
        server.url, "PATCH", "/local/stable", ["allow_upstream_names=True"], auth=LOCAL
    )
    assert status == 200, body
    _assert_every_config(server, "/local/stable", {"allow_upstream_names": True})
