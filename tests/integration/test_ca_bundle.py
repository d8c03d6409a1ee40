"""Upstream TLS through a CA the system does not know (issue 23): a mirror behind a
TLS-intercepting proxy. A throwaway CA signs a real HTTPS upstream on 127.0.0.1; the server
trusts it through ``--ca-bundle`` or ``SSL_CERT_FILE``, and says plainly when it does not."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.certs import ThrowawayCA, make_ca
from tests.support.clients import installed, pip_install
from tests.support.packages import Dist
from tests.support.server import CheeseboardServer, ServerFactory, server_command
from tests.support.upstream import UpstreamServer


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCA:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def https_upstream(ca: ThrowawayCA, dists: dict[str, list[Dist]]) -> Iterator[UpstreamServer]:
    """The fake PyPI over HTTPS, its certificate signed by the throwaway CA only."""
    with UpstreamServer(mode="html", tls=ca.server_context()) as upstream:
        for files in dists.values():
            for dist in files:
                upstream.add(dist)
        yield upstream


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _page_and_wheel(server: CheeseboardServer, dist: Dist) -> None:
    """The mirrored page lists ``dist`` and its bytes arrive intact through the server."""
    page_url = f"{server.url}root/pypi/+simple/{dist.name}/"
    status, page = _get(page_url)
    assert status == 200, page
    found = re.search(rf'href="([^"]*{re.escape(dist.filename)})[#"]', page.decode())
    assert found, page
    status, body = _get(urllib.parse.urljoin(page_url, found[1]))
    assert status == 200, body[:200]
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(dist.path.read_bytes()).hexdigest()


def test_an_untrusted_upstream_certificate_is_a_502_saying_so(
    server_factory: ServerFactory, https_upstream: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the CA, the 502 names the upstream and the certificate problem in plain words."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server = server_factory.start(https_upstream.simple_url)
    status, body = _get(f"{server.url}root/pypi/+simple/app/")
    text = body.decode()
    assert status == 502, text
    assert https_upstream.simple_url in text
    assert "TLS certificate not trusted" in text
    assert "--ca-bundle" in text
    assert not re.search(r"[A-Z][a-z]+[A-Za-z]*Error|aiohttp|_ssl\.c", text), text


def test_ca_bundle_option_trusts_the_upstream(
    server_factory: ServerFactory,
    https_upstream: UpstreamServer,
    ca: ThrowawayCA,
    dists: dict[str, list[Dist]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``--ca-bundle`` the page and the file come through, and pip installs through it."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    server = server_factory.start(https_upstream.simple_url, "--ca-bundle", str(ca.ca_pem))
    _page_and_wheel(server, dists["lib-c"][0])
    result = pip_install(server.index_url, tmp_path / "target", "app")
    assert result.returncode == 0, result.stderr
    assert {"app", "lib_a", "lib_b", "lib_c"} <= installed(tmp_path / "target")
    assert "setting ca-bundle from command line" in server.log()


def test_ssl_cert_file_in_the_server_environment_trusts_the_upstream(
    server_factory: ServerFactory,
    https_upstream: UpstreamServer,
    ca: ThrowawayCA,
    dists: dict[str, list[Dist]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``SSL_CERT_FILE`` works as for ``ssl.create_default_context()``, without the option."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_pem))  # the server inherits this environment
    server = server_factory.start(https_upstream.simple_url)
    _page_and_wheel(server, dists["lib-c"][0])
    assert "ca-bundle" not in server.log()


def _bad_bundles(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bundles that must stop serve: path and the words the error must contain."""
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("this is not a certificate\n")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    # Not readable whoever runs the test (root reads a mode-0 file): its parent is a file.
    unreadable = not_pem / "ca.pem"
    return {
        "missing": (tmp_path / "missing.pem", "No such file or directory"),
        "directory": (tmp_path, "is a directory"),
        "not PEM": (not_pem, "holds no PEM certificate"),
        "broken PEM": (broken, "is not a valid PEM CA bundle"),
        "unreadable": (unreadable, "cannot read"),
    }


@pytest.mark.parametrize("kind", ["missing", "directory", "not PEM", "broken PEM", "unreadable"])
def test_a_bad_bundle_stops_serve_with_one_line_naming_the_option(
    tmp_path: Path, kind: str
) -> None:
    """Each bad file is refused at start: exit 2, one line, the option and the reason."""
    path, words = _bad_bundles(tmp_path)[kind]
    result = _serve(tmp_path, "--ca-bundle", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cheeseboard-server: error: --ca-bundle from command line: ")
    assert words in lines[0] and str(path) in lines[0]


@pytest.mark.parametrize("source", ["environment", "config file"])
def test_the_bundle_comes_from_the_environment_or_the_config_file(
    tmp_path: Path, source: str
) -> None:
    """``CHEESEBOARD_CA_BUNDLE`` and the YAML key ``ca_bundle`` reach the same check."""
    missing = tmp_path / "nowhere" / "ca.pem"
    if source == "environment":
        result = _serve(tmp_path, env={"CHEESEBOARD_CA_BUNDLE": str(missing)})
    else:
        config = tmp_path / "cheeseboard.yaml"
        config.write_text(f"cheeseboard-server:\n  ca_bundle: {missing}\n")
        result = _serve(tmp_path, "--config", str(config))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"cheeseboard-server: error: --ca-bundle from {source}")
    assert f"cannot read {missing}" in line


def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    environment.update(env or {})
    return subprocess.run(
        server_command("serve", "--datadir", str(tmp_path / "data"), *args),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _https_directory(directory: Path, ca: ThrowawayCA) -> Iterator[str]:
    """Serve ``directory`` over HTTPS with the CA's server certificate."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    server.socket = ca.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_advisories_import_over_https_takes_the_bundle(
    server_factory: ServerFactory, ca: ThrowawayCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OSV download verifies against the system store plus ``--ca-bundle`` as well."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    served = tmp_path / "served"
    served.mkdir()
    advisory = {"id": "PYSEC-2024-1", "modified": "2024-03-01T00:00:00Z", "affected": []}
    with zipfile.ZipFile(served / "all.zip", "w") as archive:
        archive.writestr("PYSEC-2024-1.json", json.dumps(advisory))
    datadir = server_factory.init("https://127.0.0.1:9/simple/")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    command = server_command("advisories", "import", "--datadir", str(datadir))
    with _https_directory(served, ca) as base:
        refused = subprocess.run(
            [*command, f"{base}/all.zip"], env=environment, capture_output=True, text=True
        )
        assert refused.returncode == 2, refused.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        trusted = subprocess.run(
            [*command, f"{base}/all.zip"],
            env={**environment, "CHEESEBOARD_CA_BUNDLE": str(ca.ca_pem)},
            capture_output=True,
            text=True,
        )
    assert trusted.returncode == 0, trusted.stderr
    assert "read 1 advisories" in trusted.stdout, trusted.stdout
