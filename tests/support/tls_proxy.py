"""A TLS-terminating TCP proxy on 127.0.0.1, for clients that insist on HTTPS (uv derives its
trusted-publishing URLs as ``https://<authority>/_/oidc/...``): it presents a certificate of a
throwaway CA (tests/support/certs.py) and forwards the bytes to a plain HTTP server."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, context: ssl.SSLContext, backend: int) -> None:
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:
            return  # closed
        threading.Thread(target=_connect, args=(raw, context, backend), daemon=True).start()


def _connect(raw: socket.socket, context: ssl.SSLContext, backend: int) -> None:
    try:
        client = context.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()
        return
    upstream = socket.create_connection(("127.0.0.1", backend))
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join(timeout=60)
    client.close()
    upstream.close()


@contextmanager
def tls_proxy(context: ssl.SSLContext, backend_port: int) -> Iterator[str]:
    """``https://127.0.0.1:<port>/`` forwarding to ``http://127.0.0.1:<backend_port>/``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    thread = threading.Thread(target=_serve, args=(listener, context, backend_port), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        listener.close()
