"""Trust for outbound HTTPS: the system's CA store plus an optional ``--ca-bundle``.

Behind a TLS-intercepting proxy the server sees the proxy's certificates, signed by a CA the
system store lacks. ``--ca-bundle`` *adds* that CA rather than replacing the store, so upstreams
reached directly (``NO_PROXY``, a bucket inside the network) keep working. The store itself is
OpenSSL's default, which honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` as
``ssl.create_default_context()`` does (and as aiohttp's own default context does).

Here, at the bottom of the layers, because settings checks the bundle when the server starts and
every outbound client (mirror/, store/s3, ops/advisories) uses the same context.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
"""Largest bundle accepted: Mozilla's whole store is about 220 KiB as PEM."""
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


class CABundleError(ValueError):
    """Raised when a CA bundle cannot be read or holds no certificate OpenSSL accepts."""


def check_ca_bundle(path: str) -> str:
    """The absolute path of ``path`` once it is known to be a loadable PEM bundle.

    Checked when settings are read, so a bad file stops ``serve`` at start with one line naming
    the option, instead of every upstream request failing later.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            head = handle.read(MAX_BUNDLE_BYTES + 1)
    except IsADirectoryError:
        raise CABundleError(f"{path} is a directory, not a PEM file") from None
    except OSError as exc:
        raise CABundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(head) > MAX_BUNDLE_BYTES:
        raise CABundleError(f"{path} is larger than {MAX_BUNDLE_BYTES} bytes; not a CA bundle")
    if _PEM_CERTIFICATE not in head:
        raise CABundleError(f"{path} holds no PEM certificate (no '-----BEGIN CERTIFICATE-----')")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(file))
    except ssl.SSLError as exc:
        reason = (exc.reason or "unreadable").replace("_", " ").lower()
        raise CABundleError(f"{path} is not a valid PEM CA bundle ({reason})") from None
    return str(file.absolute())


def client_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """The verifying client context for outbound HTTPS, built once per process and bundle.

    Building one reads the whole system store (milliseconds), so never per request.
    """
    return _built(ca_bundle or None)


@functools.cache
def _built(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context
