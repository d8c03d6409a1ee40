"""The outbound TLS context (cheeseboard.tls): built once per process and bundle, and the bundle
adds to the system's CAs instead of replacing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.tls import CABundleError, check_ca_bundle, client_context
from tests.support.certs import make_ca


def test_the_context_is_built_once_per_bundle(tmp_path: Path) -> None:
    """Every caller in a process gets the same context object: no per-request builds."""
    bundle = str(make_ca(tmp_path).ca_pem)
    assert client_context(bundle) is client_context(bundle)
    assert client_context() is client_context(None)
    assert client_context(bundle) is not client_context()


def test_the_bundle_adds_to_the_system_store(tmp_path: Path) -> None:
    """The system's CAs stay trusted beside the bundle's one CA."""
    bundle = str(make_ca(tmp_path).ca_pem)
    system = client_context().cert_store_stats()["x509_ca"]
    assert client_context(bundle).cert_store_stats()["x509_ca"] == system + 1


def test_check_returns_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers may start elsewhere: the checked path is absolute."""
    make_ca(tmp_path / "ca")
    monkeypatch.chdir(tmp_path)
    assert check_ca_bundle("ca/ca.pem") == str(tmp_path / "ca" / "ca.pem")


def test_a_private_key_alone_is_not_a_bundle(tmp_path: Path) -> None:
    """A PEM file without a certificate (here a key) is refused, naming what is missing."""
    key = make_ca(tmp_path).server_key
    with pytest.raises(CABundleError, match="holds no PEM certificate"):
        check_ca_bundle(str(key))
