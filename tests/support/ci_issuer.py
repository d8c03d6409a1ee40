"""A local OIDC issuer for trusted-publishing tests: a thread on 127.0.0.1 serving discovery and
JWKS, and signing GitHub-Actions- and GitLab-CI-shaped ID tokens with its own test keys.

It also answers GitHub's ID token request (``ACTIONS_ID_TOKEN_REQUEST_URL``), so a real client
run "in GitHub Actions" (uv) gets a token from it. Keys can be rotated; the JWKS then publishes
only the new ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

REQUEST_TOKEN = "local-actions-request-token"  # the runner's bearer, test only


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalIssuer:
    """Discovery at ``url``/.well-known/openid-configuration, keys at ``url``/jwks."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)
        self.published: list[RSAKey | ECKey] = [self.rsa, self.ec]
        self.jwks_requests = 0
        self.discovery_requests = 0
        self.failing = False  # answer 503 to discovery (an issuer that is down)
        self.github_claims: dict[str, Any] = {}  # what the Actions endpoint signs
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LocalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> None:
        """New RSA key under a new kid; the old keys are no longer published."""
        self.rsa = RSAKey.generate_key(
            2048, parameters={"kid": f"rsa-{secrets.token_hex(4)}"}, private=True
        )
        self.published = [self.rsa]

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        key: RSAKey | ECKey | None = None,
        alg: str | None = None,
        lifetime: int = 300,
        now: float | None = None,
        **overrides: Any,
    ) -> str:
        """A signed ID token: ``claims`` plus iss, iat, nbf, exp and a fresh jti (each
        overridable; an override of None drops the claim)."""
        key = key or self.rsa
        issued = int(time.time() if now is None else now)
        payload: dict[str, Any] = {
            "iss": self.url,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_hex(16),
            **claims,
        }
        for name, value in overrides.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        algorithm = alg or ("ES256" if isinstance(key, ECKey) else "RS256")
        return jwt.encode({"alg": algorithm, "kid": key.kid}, payload, key)

    def unsigned(self, claims: Mapping[str, Any], alg: str, secret: bytes = b"") -> str:
        """A token made without joserfc's checks: ``alg`` none (no signature) or HS256 keyed
        with ``secret`` (e.g. the public key's PEM, the classic confusion attack)."""
        issued = int(time.time())
        payload = {"iss": self.url, "iat": issued, "exp": issued + 300, "jti": secrets.token_hex(8)}
        header = _b64(json.dumps({"alg": alg, "kid": self.rsa.kid, "typ": "JWT"}).encode())
        body = _b64(json.dumps({**payload, **claims}).encode())
        if alg == "none":
            return f"{header}.{body}."
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(mac)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _json(self, value: object, status: int = 200) -> None:
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    issuer.discovery_requests += 1
                    if issuer.failing:
                        self._json({"message": "down"}, 503)
                        return
                    self._json({"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})
                elif parts.path == "/jwks":
                    issuer.jwks_requests += 1
                    self._json({"keys": [k.as_dict(private=False) for k in issuer.published]})
                elif parts.path == "/actions-token":
                    if self.headers.get("Authorization", "").lower() != f"bearer {REQUEST_TOKEN}":
                        self._json({"message": "bad request token"}, 401)
                        return
                    audience = parse_qs(parts.query).get("audience", [""])[0]
                    token = issuer.sign({**issuer.github_claims, "aud": audience})
                    self._json({"value": token, "count": 1})
                else:
                    self._json({"message": "not found"}, 404)

        return Handler


@contextmanager
def local_issuer() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer().start()
    try:
        yield issuer
    finally:
        issuer.stop()


def github_claims(
    repository: str = "octo/widget",
    workflow: str = "release.yml",
    ref: str = "refs/tags/v1.0",
    environment: str | None = "pypi",
    audience: str = "cheeseboard",
) -> dict[str, Any]:
    """The claims GitHub Actions puts in an ID token (the ones publishers match, and a few)."""
    owner = repository.split("/")[0]
    claims: dict[str, Any] = {
        "aud": audience,
        "sub": f"repo:{repository}:environment:{environment}",
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": "1234",
        "workflow_ref": f"{repository}/.github/workflows/{workflow}@{ref}",
        "job_workflow_ref": f"{repository}/.github/workflows/{workflow}@{ref}",
        "ref": ref,
        "run_id": "42",
    }
    if environment is not None:
        claims["environment"] = environment
    return claims


def gitlab_claims(
    project_path: str = "group/widget",
    config: str = ".gitlab-ci.yml",
    ref: str = "main",
    environment: str | None = None,
    audience: str = "cheeseboard",
) -> dict[str, Any]:
    """The claims GitLab CI puts in an ID token."""
    claims: dict[str, Any] = {
        "aud": audience,
        "sub": f"project_path:{project_path}:ref_type:branch:ref:{ref}",
        "project_path": project_path,
        "namespace_path": project_path.split("/")[0],
        "ci_config_ref_uri": f"gitlab.example.com/{project_path}//{config}@refs/heads/{ref}",
        "ref": ref,
        "ref_type": "branch",
        "pipeline_id": "7",
    }
    if environment is not None:
        claims["environment"] = environment
    return claims
