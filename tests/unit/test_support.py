"""Prove the test-support package factory and fake upstream work against real pip/uv."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.packages import Dist, build_sdist, build_wheel, installer_env
from tests.support.upstream import DEFAULT_UPLOAD_TIME, Fault, UpstreamServer

VENV_BIN = Path(sys.executable).parent
PYTHON = VENV_BIN / "python"
UV = VENV_BIN / "uv"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"


def fetch(
    server: UpstreamServer,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Do one request on a fresh connection and close everything afterwards."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        try:
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            resp.close()
    finally:
        conn.close()


def run(cmd: list[str | Path]) -> subprocess.CompletedProcess[str]:
    """Run an installer with all pip/uv configuration stripped, failing loudly."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        env=installer_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{cmd}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dist]:
    """alpha 1.0 (wheel + sdist, depends on beta) and beta 1.0 (wheel)."""
    dest = tmp_path_factory.mktemp("dists")
    return {
        "alpha-whl": build_wheel(dest, "alpha", "1.0", requires_dist=["beta"]),
        "alpha-sdist": build_sdist(dest, "alpha", "1.0", requires_dist=["beta"]),
        "beta-whl": build_wheel(dest, "beta", "1.0", requires_python=">=3.8"),
    }


@pytest.fixture(scope="module")
def html_upstream(dists: dict[str, Dist]) -> Iterator[UpstreamServer]:
    """An html-mode upstream shared by the (slow) installer tests."""
    with UpstreamServer("html") as up:
        for dist in dists.values():
            up.add(dist)
        yield up


@pytest.fixture
def upstream(dists: dict[str, Dist]) -> Iterator[UpstreamServer]:
    """A fresh html-mode upstream per test, for faults and lifecycle tests."""
    with UpstreamServer("html") as up:
        for dist in dists.values():
            up.add(dist)
        yield up


@pytest.fixture
def json_upstream(dists: dict[str, Dist]) -> Iterator[UpstreamServer]:
    """A pypi.org-like upstream with PEP 691 negotiation."""
    with UpstreamServer("json") as up:
        for dist in dists.values():
            up.add(dist, upload_time="2023-05-06T07:08:09.000001Z")
        yield up


# -- package factory --------------------------------------------------------------------


def test_wheel_is_deterministic(tmp_path: Path) -> None:
    """The same arguments give byte-identical wheels, so hashes are stable."""
    a = build_wheel(tmp_path / "a", "My.Pkg", "2.0", requires_dist=["x>=1"])
    b = build_wheel(tmp_path / "b", "My.Pkg", "2.0", requires_dist=["x>=1"])
    assert a.filename == "my_pkg-2.0-py3-none-any.whl"
    assert a.sha256 == b.sha256 == hashlib.sha256(a.path.read_bytes()).hexdigest()
    assert a.size == a.path.stat().st_size
    assert a.kind == "wheel"


def test_wheel_record_and_metadata(tmp_path: Path) -> None:
    """RECORD hashes every file correctly and METADATA equals Dist.metadata."""
    dist = build_wheel(tmp_path, "my-pkg", "1.2", requires_python=">=3.9", requires_dist=["b"])
    with zipfile.ZipFile(dist.path) as zf:
        record = zf.read("my_pkg-1.2.dist-info/RECORD").decode().splitlines()
        assert zf.read("my_pkg-1.2.dist-info/METADATA") == dist.metadata
        assert zf.read("my_pkg/__init__.py") == b'__version__ = "1.2"\n'
        listed = set()
        for line in record:
            path, digest, size = line.split(",")
            listed.add(path)
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert int(size) == len(data)
        assert listed == set(zf.namelist())
    text = dist.metadata.decode()
    assert "Metadata-Version: 2.1\nName: my-pkg\nVersion: 1.2\n" in text
    assert "Requires-Python: >=3.9\n" in text
    assert "Requires-Dist: b\n" in text
    assert dist.requires_python == ">=3.9"


def test_sdist_is_deterministic_and_complete(tmp_path: Path) -> None:
    """sdists are reproducible and carry PKG-INFO, the package and the in-tree backend."""
    a = build_sdist(tmp_path / "a", "My_Pkg", "0.1", requires_dist=["beta"])
    b = build_sdist(tmp_path / "b", "My_Pkg", "0.1", requires_dist=["beta"])
    assert a.filename == "my_pkg-0.1.tar.gz"
    assert a.sha256 == b.sha256
    assert a.kind == "sdist"
    with tarfile.open(a.path) as tf:
        names = set(tf.getnames())
        pkg_info = tf.extractfile("my_pkg-0.1/PKG-INFO")
        assert pkg_info is not None
        with pkg_info:
            assert pkg_info.read() == a.metadata
    assert {
        "my_pkg-0.1/PKG-INFO",
        "my_pkg-0.1/pyproject.toml",
        "my_pkg-0.1/cb_test_backend.py",
        "my_pkg-0.1/my_pkg/__init__.py",
    } <= names


def test_payload_makes_big_incompressible_files(tmp_path: Path) -> None:
    """payload_size grows the file by at least that many bytes, deterministically."""
    small = build_wheel(tmp_path / "s", "big", "1.0")
    big = build_wheel(tmp_path / "b", "big", "1.0", payload_size=300_000)
    again = build_wheel(tmp_path / "c", "big", "1.0", payload_size=300_000)
    sdist = build_sdist(tmp_path / "d", "big", "1.0", payload_size=300_000)
    assert big.size >= small.size + 300_000
    assert sdist.size >= 300_000
    assert big.sha256 == again.sha256


# -- real installers against the html upstream ------------------------------------------


def test_pip_installs_wheels(html_upstream: UpstreamServer, tmp_path: Path) -> None:
    """Real pip resolves alpha -> beta from the upstream and installs both wheels."""
    run(
        [PYTHON, "-m", "pip", "install", "--isolated", "--no-cache-dir",
         "--disable-pip-version-check", "--index-url",
         html_upstream.simple_url, "--target", tmp_path, "alpha"]
    )  # fmt: skip
    assert (tmp_path / "alpha" / "__init__.py").read_text() == '__version__ = "1.0"\n'
    assert (tmp_path / "beta" / "__init__.py").exists()
    assert html_upstream.count("/files/alpha-1.0-py3-none-any.whl", "GET") >= 1
    assert html_upstream.count("/simple/beta/") >= 1
    assert html_upstream.count("/simple/pip/") == 0


def test_pip_builds_sdist_offline(html_upstream: UpstreamServer, tmp_path: Path) -> None:
    """pip builds the sdist with its in-tree backend, needing nothing from any index."""
    run(
        [PYTHON, "-m", "pip", "install", "--isolated", "--no-cache-dir",
         "--disable-pip-version-check", "--index-url",
         html_upstream.simple_url, "--target", tmp_path, "--no-binary", "alpha", "alpha"]
    )  # fmt: skip
    assert (tmp_path / "alpha" / "__init__.py").read_text() == '__version__ = "1.0"\n'
    assert (tmp_path / "alpha-1.0.dist-info" / "METADATA").exists()
    assert (tmp_path / "beta" / "__init__.py").exists()
    assert html_upstream.count("/files/alpha-1.0.tar.gz", "GET") >= 1


def test_uv_installs_wheels(html_upstream: UpstreamServer, tmp_path: Path) -> None:
    """Real uv installs from the html upstream too."""
    run(
        [UV, "pip", "install", "--no-cache", "--index-url", html_upstream.simple_url,
         "--python", PYTHON, "--target", tmp_path, "alpha"]
    )  # fmt: skip
    assert (tmp_path / "alpha" / "__init__.py").exists()
    assert (tmp_path / "beta" / "__init__.py").exists()
    assert any("uv/" in r.headers.get("User-Agent", "") for r in html_upstream.requests)


# -- routes -----------------------------------------------------------------------------


def test_html_project_page(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """HTML pages carry hashes and requires-python but no core-metadata or cache headers."""
    status, headers, body = fetch(upstream, "/simple/beta/")
    assert status == 200
    assert headers["Content-Type"] == "text/html"
    assert not {"ETag", "Last-Modified", "Cache-Control"} & set(headers)
    page = body.decode()
    beta = dists["beta-whl"]
    assert f'href="../../files/{beta.filename}#sha256={beta.sha256}"' in page
    assert 'data-requires-python="&gt;=3.8"' in page
    assert "data-core-metadata" not in page
    status, _, index = fetch(upstream, "/simple/")
    assert status == 200
    assert b'<a href="alpha/">' in index
    assert b'<a href="beta/">' in index


def test_names_redirects_and_404(upstream: UpstreamServer) -> None:
    """Non-normalized names answer 200, missing slash is 308, unknown is an empty 404."""
    assert fetch(upstream, "/simple/ALPHA/")[0] == 200
    status, headers, _ = fetch(upstream, "/simple/alpha")
    assert status == 308
    assert headers["Location"] == "/simple/alpha/"
    assert fetch(upstream, "/simple/nope/")[::2] == (404, b"")
    assert fetch(upstream, "/pypi/alpha/1.0/json")[0] == 404
    assert fetch(upstream, "/pypi/nope/json")[0] == 404


def test_html_mode_metadata_and_json_api(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """html mode still serves .metadata files and a JSON API carrying core-metadata."""
    wheel, sdist = dists["alpha-whl"], dists["alpha-sdist"]
    assert fetch(upstream, f"/files/{wheel.filename}.metadata")[::2] == (200, wheel.metadata)
    assert fetch(upstream, f"/files/{sdist.filename}.metadata")[0] == 404
    status, _, body = fetch(upstream, "/pypi/Alpha/json")
    assert status == 200
    doc = json.loads(body)
    assert doc["info"]["version"] == "1.0"
    assert doc["info"]["requires_dist"] == ["beta"]
    assert doc["vulnerabilities"] == []
    assert isinstance(doc["last_serial"], int)
    files = {f["filename"]: f for f in doc["releases"]["1.0"]}
    assert {f["filename"] for f in doc["urls"]} == set(files)
    whl = files[wheel.filename]
    assert whl["core-metadata"] == {"sha256": hashlib.sha256(wheel.metadata).hexdigest()}
    assert whl["packagetype"] == "bdist_wheel"
    assert whl["digests"]["sha256"] == wheel.sha256
    assert whl["upload_time_iso_8601"] == DEFAULT_UPLOAD_TIME
    assert not whl["upload_time"].endswith("Z")
    assert files[sdist.filename]["core-metadata"] is False


def test_json_negotiation(json_upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """json mode answers PEP 691/700 JSON with size, upload-time and core-metadata."""
    status, headers, body = fetch(json_upstream, "/simple/alpha/", headers={"Accept": JSON_ACCEPT})
    assert status == 200
    assert headers["Content-Type"] == JSON_ACCEPT
    doc = json.loads(body)
    assert doc["meta"]["api-version"] == "1.1"
    assert doc["name"] == "alpha"
    assert doc["versions"] == ["1.0"]
    files = {f["filename"]: f for f in doc["files"]}
    wheel = dists["alpha-whl"]
    entry = files[wheel.filename]
    assert entry["size"] == wheel.size
    assert entry["upload-time"] == "2023-05-06T07:08:09.000001Z"
    assert entry["hashes"] == {"sha256": wheel.sha256}
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(wheel.metadata).hexdigest()}
    assert entry["url"] == f"{json_upstream.url}files/{wheel.filename}"
    assert "core-metadata" not in files[dists["alpha-sdist"].filename]
    # HTML is still the fallback, and advertises core-metadata in json mode.
    status, headers, page = fetch(json_upstream, "/simple/alpha/")
    assert headers["Content-Type"] == "text/html"
    assert b"data-core-metadata" in page
    status, _, index = fetch(json_upstream, "/simple/", headers={"Accept": JSON_ACCEPT})
    assert {p["name"] for p in json.loads(index)["projects"]} == {"alpha", "beta"}


def test_json_etag(json_upstream: UpstreamServer) -> None:
    """json mode sends an ETag and answers a matching If-None-Match with 304."""
    _, headers, _ = fetch(json_upstream, "/simple/beta/", headers={"Accept": JSON_ACCEPT})
    etag = headers["ETag"]
    status, headers, body = fetch(
        json_upstream, "/simple/beta/", headers={"Accept": JSON_ACCEPT, "If-None-Match": etag}
    )
    assert (status, body) == (304, b"")
    assert headers["ETag"] == etag


def test_yanked_and_remove(upstream: UpstreamServer, tmp_path: Path) -> None:
    """Yanked files get data-yanked; remove() unpublishes."""
    dist = build_wheel(tmp_path, "gamma", "2.0")
    upstream.add(dist, yanked="bad <build>")
    page = fetch(upstream, "/simple/gamma/")[2].decode()
    assert 'data-yanked="bad &lt;build&gt;"' in page
    info = json.loads(fetch(upstream, "/pypi/gamma/json")[2])["info"]
    assert (info["yanked"], info["yanked_reason"]) == (True, "bad <build>")
    upstream.remove(dist.filename)
    assert fetch(upstream, "/simple/gamma/")[0] == 404
    assert fetch(upstream, f"/files/{dist.filename}")[0] == 404


def test_ranges(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """Files support HEAD, byte ranges (206) and 416 for unsatisfiable ranges."""
    dist = dists["alpha-whl"]
    path = f"/files/{dist.filename}"
    data = dist.path.read_bytes()
    status, headers, body = fetch(upstream, path, "HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(dist.size)
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = fetch(upstream, path, headers={"Range": "bytes=2-9"})
    assert (status, body) == (206, data[2:10])
    assert headers["Content-Range"] == f"bytes 2-9/{dist.size}"
    assert fetch(upstream, path, headers={"Range": "bytes=10-"})[2] == data[10:]
    assert fetch(upstream, path, headers={"Range": "bytes=-5"})[2] == data[-5:]
    status, headers, _ = fetch(upstream, path, headers={"Range": f"bytes={dist.size}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{dist.size}"


# -- faults -----------------------------------------------------------------------------


def test_fault_corrupt(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """corrupt keeps the length but changes the bytes."""
    dist = dists["alpha-whl"]
    upstream.set_fault(dist.filename, Fault("corrupt"))
    status, _, body = fetch(upstream, f"/files/{dist.filename}")
    assert status == 200
    assert len(body) == dist.size
    assert hashlib.sha256(body).hexdigest() != dist.sha256
    upstream.set_fault(dist.filename, None)
    assert hashlib.sha256(fetch(upstream, f"/files/{dist.filename}")[2]).hexdigest() == dist.sha256


def test_fault_truncate(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """truncate announces the full length, sends half, then closes."""
    dist = dists["alpha-whl"]
    upstream.set_fault(dist.filename, Fault("truncate"))
    with pytest.raises(http.client.IncompleteRead) as info:
        fetch(upstream, f"/files/{dist.filename}")
    assert len(info.value.partial) == dist.size // 2


def test_fault_status_and_page_faults(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """status faults apply to files, simple pages and the JSON API alike."""
    upstream.set_fault(dists["beta-whl"].filename, Fault("status", status=503))
    upstream.set_fault("simple/alpha", Fault("status", status=502))
    upstream.set_fault("pypi/alpha", Fault("status", status=500))
    assert fetch(upstream, f"/files/{dists['beta-whl'].filename}")[0] == 503
    assert fetch(upstream, "/simple/Alpha/")[0] == 502
    assert fetch(upstream, "/pypi/alpha/json")[0] == 500
    assert fetch(upstream, "/simple/beta/")[0] == 200


def test_fault_delay(upstream: UpstreamServer) -> None:
    """delay sleeps before answering normally."""
    upstream.set_fault("simple/beta", Fault("delay", seconds=0.3))
    start = time.monotonic()
    status = fetch(upstream, "/simple/beta/")[0]
    assert status == 200
    assert time.monotonic() - start >= 0.3


def test_fault_reset(upstream: UpstreamServer, dists: dict[str, Dist]) -> None:
    """reset drops the connection without sending a response."""
    upstream.set_fault(dists["alpha-whl"].filename, Fault("reset"))
    with pytest.raises(ConnectionError):
        fetch(upstream, f"/files/{dists['alpha-whl'].filename}")
    assert upstream.count(dists["alpha-whl"].filename) == 1


# -- lifecycle and recording ------------------------------------------------------------


def test_stop_refuses_and_restart_reuses_port(upstream: UpstreamServer) -> None:
    """After stop() connections are refused; start() binds the same port again."""
    port = upstream.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/simple/")
        with conn.getresponse() as resp:
            assert resp.status == 200
            resp.read()
        upstream.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/simple/")
            conn.getresponse().close()
    finally:
        conn.close()
    with pytest.raises(ConnectionRefusedError):
        fetch(upstream, "/simple/")
    upstream.start()
    assert upstream.port == port
    assert fetch(upstream, "/simple/alpha/")[0] == 200


def test_stop_does_not_hang_on_delayed_request(upstream: UpstreamServer) -> None:
    """stop() interrupts a request sleeping in a delay fault."""
    upstream.set_fault("simple/alpha", Fault("delay", seconds=30))
    errors: list[BaseException] = []

    def client() -> None:
        try:
            fetch(upstream, "/simple/alpha/")
        except (ConnectionError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while upstream.count("/simple/alpha/") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    upstream.stop()
    thread.join(5)
    assert time.monotonic() - start < 3
    assert not thread.is_alive()
    assert len(errors) == 1


def test_request_recording(upstream: UpstreamServer) -> None:
    """Requests are recorded with method, path (with query) and headers."""
    upstream.clear_requests()
    fetch(upstream, "/simple/alpha/?x=1", headers={"X-Probe": "yes"})
    fetch(upstream, "/simple/alpha/", "HEAD")
    fetch(upstream, "/simple/beta/")
    assert upstream.count("/simple/alpha/") == 2
    assert upstream.count("/simple/alpha/", "HEAD") == 1
    assert upstream.count("/simple/") == 3
    first = upstream.requests[0]
    assert (first.method, first.path) == ("GET", "/simple/alpha/?x=1")
    assert first.headers["X-Probe"] == "yes"
    assert first.time <= time.time()
    upstream.clear_requests()
    assert upstream.requests == []


def test_sdist_backend_exposes_hooks(dists: dict[str, Dist]) -> None:
    """The sdist's backend module is valid Python exposing the PEP 517 hooks."""
    with tarfile.open(dists["alpha-sdist"].path) as tf:
        member = tf.extractfile("alpha-1.0/cb_test_backend.py")
        assert member is not None
        with member:
            source = member.read().decode()
    namespace: dict[str, object] = {}
    exec(compile(source, "cb_test_backend.py", "exec"), namespace)  # noqa: S102
    for hook in ("build_wheel", "build_sdist", "prepare_metadata_for_build_wheel"):
        assert callable(namespace[hook])
    get_requires = namespace["get_requires_for_build_wheel"]
    assert callable(get_requires)
    assert get_requires() == []
