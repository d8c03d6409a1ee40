"""OpenID Connect providers for the sign-in tests: the real ``oidc-provider-mock`` process, and a
minimal provider of our own (discovery, JWKS, token endpoint) whose ID tokens the test crafts,
signed with keys it controls, for what the mock cannot produce (forged, expired, wrong audience).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from tests.support.process import ManagedProcess, http_probe
from tests.support.server import free_port

CLIENT_ID = "cheeseboard-test"
CLIENT_SECRET = "client-secret-for-tests"


def write_config(
    path: Path, issuer: str, auto_create: bool, display_name: str = "Test IdP", **extra: Any
) -> Path:
    """A server config file with an ``oidc:`` section for ``issuer``."""
    section = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "groups_claim": "groups",
        "auto_create_users": auto_create,
        "display_name": display_name,
        **extra,
    }
    path.write_text(json.dumps({"oidc": section}))  # JSON is YAML
    return path


@contextmanager
def mock_provider(log_dir: Path, *claims: dict[str, Any]) -> Iterator[str]:
    """``oidc-provider-mock`` on a free port with predefined users; yields its issuer URL."""
    port = free_port()
    users = [arg for user in claims for arg in ("--user-claims", json.dumps(user))]
    issuer = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), *users],
        name="oidc-provider-mock",
        log_path=log_dir / "oidc-provider-mock.log",
        ready=http_probe(f"{issuer}/.well-known/openid-configuration"),
    )
    process.start()
    try:
        yield issuer
    finally:
        process.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OwnProvider:
    """Discovery, JWKS and a token endpoint on 127.0.0.1. The token endpoint checks the client
    secret and the PKCE verifier against ``challenge``, then answers ``id_token`` (set by the
    test) once per code."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        self.published: list[Any] = [self.key]
        self.id_token = ""
        self.challenge = ""
        # For a browser: /authorize answers at once (no login page), keeping the request's PKCE
        # challenge and setting ``id_token`` to ``forge(nonce)``; None leaves ``id_token`` as is.
        self.forge: Any = None
        self.jwks_fetches = 0
        self.token_calls = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OwnProvider:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign(self, claims: dict[str, Any], key: Any = None, kid: str | None = None) -> str:
        """``claims`` signed with ``key`` (default: the published key) under ``kid``."""
        key = key or self.key
        alg = "ES256" if isinstance(key, ECKey) else "RS256"
        header = {"alg": alg, "kid": kid or key.kid}
        return jwt.encode(header, claims, key)

    def claims(self, nonce: str, /, **changes: Any) -> dict[str, Any]:
        """A valid ID token's claims for this server's client; ``changes`` alter them."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "sub-dave",
            "preferred_username": "dave",
            "groups": ["/ops", "devs"],
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": provider.issuer,
                            "authorization_endpoint": f"{provider.issuer}/authorize",
                            "token_endpoint": f"{provider.issuer}/token",
                            "jwks_uri": f"{provider.issuer}/jwks",
                        },
                    )
                elif self.path.startswith("/authorize?"):
                    query = {k: v[0] for k, v in parse_qs(self.path.split("?", 1)[1]).items()}
                    provider.challenge = query.get("code_challenge", "")
                    if provider.forge is not None:
                        provider.id_token = provider.forge(query.get("nonce", ""))
                    answer = urlencode({"code": "abc", "state": query["state"]})
                    back = f"{query['redirect_uri']}?{answer}"
                    self.send_response(302)
                    self.send_header("Location", back)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/jwks":
                    provider.jwks_fetches += 1
                    keys = KeySet(provider.published).as_dict(private=False)
                    self._json(200, keys)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                provider.token_calls += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                expected = (
                    "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                )
                if self.headers.get("Authorization") != expected:
                    self._json(401, {"error": "invalid_client"})
                    return
                verifier = form.get("code_verifier", "")
                if _b64(hashlib.sha256(verifier.encode()).digest()) != provider.challenge:
                    self._json(400, {"error": "invalid_grant"})
                    return
                self._json(
                    200,
                    {"access_token": "x", "token_type": "Bearer", "id_token": provider.id_token},
                )

        return Handler


@contextmanager
def own_provider() -> Iterator[OwnProvider]:
    provider = OwnProvider().start()
    try:
        yield provider
    finally:
        provider.stop()
