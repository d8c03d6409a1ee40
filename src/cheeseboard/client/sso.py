"""``cheeseboard login --sso``: sign in through the server's OIDC provider in a browser.

The client listens on a random port of 127.0.0.1 and opens (or prints) the server's
``/+web/oidc/login?cli=PORT&cli_state=S``. Once the provider has signed the person in, the server
sends the browser back to ``http://127.0.0.1:PORT/callback`` with ``S``, the user name and a
login token, the same token ``cheeseboard login`` stores after a password. An answer without
the state this run made is ignored, so another page cannot plant a login.
"""

from __future__ import annotations

import secrets
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError
from cheeseboard.core.constant_time import same_secret

DONE_PAGE = (
    b"<!DOCTYPE html><title>cheeseboard</title><p id=done>Signed in; the command line has its "
    b"token. You can close this tab.</p>"
)


class _Answer:
    """What the browser brought back (the first answer with our state)."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.user: str | None = None
        self.token: str | None = None
        self.arrived = threading.Event()


def _handler(answer: _Answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            state = query.get("state", "")
            if parts.path != "/callback" or not same_secret(state, answer.state):
                self.send_error(404)
                return
            answer.user, answer.token = query.get("user"), query.get("token")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(DONE_PAGE)))
            self.end_headers()
            self.wfile.write(DONE_PAGE)
            answer.arrived.set()

    return Handler


def login_sso(config: ClientConfig, out: Output, timeout: float, open_browser: bool) -> None:
    """Wait up to ``timeout`` seconds for the browser's sign-in; store the token it brings."""
    url = config.require_url()
    answer = _Answer(secrets.token_urlsafe(24))
    server = HTTPServer(("127.0.0.1", 0), _handler(answer))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        query = urlencode({"cli": port, "cli_state": answer.state})
        sign_in = f"{url.rstrip('/')}/+web/oidc/login?{query}"
        # On stderr even with --json: the person (or a test) must see where to go.
        print(f"sign in through your browser: {sign_in}", file=sys.stderr, flush=True)
        if open_browser:
            webbrowser.open(sign_in)
        if not answer.arrived.wait(timeout):
            raise ClientError(
                f"no sign-in arrived within {timeout:g} seconds",
                "open the URL above in a browser on this machine, or pass a longer --timeout",
            )
    finally:
        server.shutdown()
        server.server_close()
    if not answer.user or not answer.token:
        raise ClientError("the server sent the browser back without a token")
    config.user, config.token, config.password = answer.user, answer.token, None
    config.save()
    out.success(f"logged in as {answer.user}", {"user": answer.user, "via": "sso"})
