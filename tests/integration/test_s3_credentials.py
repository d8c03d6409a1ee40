"""The AWS credential chain against real HTTP endpoints and a real S3.

Small ``http.server`` servers on 127.0.0.1 (each in a thread) play EC2 instance metadata
(IMDSv2), the ECS container agent and STS; the client finds them through the standard endpoint
variables. They hand out SeaweedFS's configured key pair (tests/support/seaweed.py), so the
requests signed with them are checked by a real S3 gateway.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cheeseboard.store.s3 import S3Client, S3Location
from cheeseboard.store.s3_credentials import REFRESH_EARLY
from tests.support.seaweed import SeaweedServer

ROLE = "cheeseboard-node"
TOKEN = "imds-token-123"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeAWS:
    """One server answering as IMDS, the ECS agent and STS; notes every request it gets."""

    def __init__(self, access_key: str, secret_key: str, lifetime: float = 3600) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.lifetime = lifetime
        self.delay = 0.0
        self.with_token = False
        """SeaweedFS checks a session token against its own STS and refuses made-up ones, so
        the keys it accepts go out without one unless a test asks for it."""
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.issued = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                fake.handle(self, "PUT")

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.requests]

    def _credentials(self) -> dict[str, str]:
        with self.lock:
            self.issued += 1
        time.sleep(self.delay)
        return {
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key,
            "SecretAccessKey": self.secret_key,
            "Token": f"session-token-{self.issued}" if self.with_token else "",
            "Expiration": iso(time.time() + self.lifetime),
        }

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        headers = {key.lower(): value for key, value in handler.headers.items()}
        self.requests.append((method, handler.path, headers, body))
        status, content_type, answer = self.answer(method, handler.path, headers, body)
        data = answer.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: str
    ) -> tuple[int, str, str]:
        base = "/latest/meta-data/iam/security-credentials/"
        if method == "PUT" and path == "/latest/api/token":
            if headers.get("x-aws-ec2-metadata-token-ttl-seconds") != "21600":
                return 400, "text/plain", "missing TTL"
            return 200, "text/plain", TOKEN
        if method == "GET" and path.startswith(base):
            if headers.get("x-aws-ec2-metadata-token") != TOKEN:
                return 401, "text/plain", "IMDSv2 token required"
            if path == base:
                return 200, "text/plain", ROLE
            if path == base + ROLE:
                return 200, "application/json", json.dumps(self._credentials())
            return 404, "text/plain", "no such role"
        if method == "GET" and path == "/ecs/creds":
            if headers.get("authorization") != "ecs-auth":
                return 403, "text/plain", "bad token"
            return 200, "application/json", json.dumps(self._credentials())
        if method == "POST" and path == "/":
            form = dict(urllib.parse.parse_qsl(body))
            if form.get("WebIdentityToken") != "oidc-jwt":
                return (
                    400,
                    "text/xml",
                    (
                        "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                        "<Message>bad token</Message></Error></ErrorResponse>"
                    ),
                )
            issued = self._credentials()
            return (
                200,
                "text/xml",
                (
                    '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                    "<AssumeRoleWithWebIdentityResult><Credentials>"
                    f"<AccessKeyId>{issued['AccessKeyId']}</AccessKeyId>"
                    f"<SecretAccessKey>{issued['SecretAccessKey']}</SecretAccessKey>"
                    f"<SessionToken>{issued['Token']}</SessionToken>"
                    f"<Expiration>{issued['Expiration']}</Expiration>"
                    "</Credentials></AssumeRoleWithWebIdentityResult>"
                    "</AssumeRoleWithWebIdentityResponse>"
                ),
            )
        return 404, "text/plain", "not found"


@pytest.fixture
def fake(s3_server: SeaweedServer) -> Iterator[FakeAWS]:
    fake = FakeAWS(s3_server.access_key, s3_server.secret_key)
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def bucket(s3_server: SeaweedServer) -> str:
    name = f"cb-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(name)
    return name


def chain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No keys in the environment or files; the rest in ``extra``."""
    return {
        "HOME": str(tmp_path),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        **extra,
    }


def location(s3_server: SeaweedServer, bucket: str, env: dict[str, str]) -> S3Location:
    found = S3Location.from_url(s3_server.url(bucket), environ=env)
    assert found.access_key is None and found.chain is not None
    return found


async def round_trip(client: S3Client) -> None:
    """PUT, GET and a presigned GET, all accepted by SeaweedFS."""
    await client.put_bytes("probe", b"signed with chain credentials")
    assert await client.get_bytes("probe") == b"signed with chain credentials"
    async with (
        aiohttp.ClientSession() as session,
        session.get(client.presign_get("probe")) as response,
    ):
        assert response.status == 200
        assert await response.read() == b"signed with chain credentials"


async def test_instance_metadata_v2(
    s3_server: SeaweedServer, bucket: str, fake: FakeAWS, tmp_path: Path
) -> None:
    env = chain_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=fake.url)
    async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
        await round_trip(client)
        current = client.credentials.current
        assert current is not None and f"role {ROLE}" in current.source
        assert current.expiry is not None and 3500 < current.expiry - time.time() <= 3600
    assert fake.paths() == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", f"/latest/meta-data/iam/security-credentials/{ROLE}"),
    ]
    assert fake.requests[0][2]["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert all(
        headers["x-aws-ec2-metadata-token"] == TOKEN for _, _, headers, _ in fake.requests[1:]
    )


async def test_instance_metadata_refreshed_before_expiry(
    s3_server: SeaweedServer, bucket: str, fake: FakeAWS, tmp_path: Path
) -> None:
    """Credentials expiring within five minutes are replaced before the next request, once for
    many concurrent requests; the new ones are what gets signed."""
    fake.lifetime = 3600
    env = chain_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=fake.url)
    async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
        await client.put_bytes("a", b"1")
        assert fake.issued == 1
        # Jump to 10 s before the refresh point: nothing happens.
        client.credentials.clock = lambda: time.time() + 3600 - REFRESH_EARLY - 10
        await client.put_bytes("a", b"2")
        assert fake.issued == 1
        # Past it: one refresh (the fake answers slowly, so the callers overlap), then all sign.
        fake.delay = 0.3
        fake.lifetime = 7200  # the new ones are fresh at the shifted clock
        client.credentials.clock = lambda: time.time() + 3600 - REFRESH_EARLY + 10

        await asyncio.gather(*(client.put_bytes(f"n{i}", b"x") for i in range(8)))
        assert fake.issued == 2 and client.credentials.refreshes == 2
        assert await client.get_bytes("n7") == b"x"
    tokens = [path for method, path, _, _ in fake.requests if method == "PUT"]
    assert len(tokens) == 2  # a fresh IMDSv2 token for the refresh too


async def test_container_credentials(
    s3_server: SeaweedServer, bucket: str, fake: FakeAWS, tmp_path: Path
) -> None:
    token_file = tmp_path / "ecs-token"
    token_file.write_text("ecs-auth\n")
    env = chain_env(
        tmp_path,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=fake.url + "/ecs/creds",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
        AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:1",  # must not be reached
    )
    async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
        await round_trip(client)
    assert fake.paths() == [("GET", "/ecs/creds")]


async def test_web_identity_via_sts(
    s3_server: SeaweedServer, bucket: str, fake: FakeAWS, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("oidc-jwt\n")
    env = chain_env(
        tmp_path,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/cheeseboard",
        AWS_ROLE_SESSION_NAME="node-1",
        AWS_ENDPOINT_URL_STS=fake.url,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=fake.url,  # must not be reached
    )
    async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
        await round_trip(client)
    assert fake.paths() == [("POST", "/")]
    form = dict(urllib.parse.parse_qsl(fake.requests[0][3]))
    assert form == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": "arn:aws:iam::123456789012:role/cheeseboard",
        "RoleSessionName": "node-1",
        "WebIdentityToken": "oidc-jwt",
    }
    assert "authorization" not in fake.requests[0][2]  # unsigned


async def test_a_refused_web_identity_is_reported(
    s3_server: SeaweedServer, bucket: str, fake: FakeAWS, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("expired-jwt")
    env = chain_env(
        tmp_path,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/cheeseboard",
        AWS_ENDPOINT_URL_STS=fake.url,
    )
    async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
        with pytest.raises(Exception, match="HTTP 400 InvalidIdentityToken: bad token"):
            await client.put_bytes("x", b"x")


async def test_profile_file_keys_reach_s3(
    s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "credentials").write_text(
        f"[seaweed]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    env = chain_env(tmp_path, AWS_PROFILE="seaweed", AWS_EC2_METADATA_DISABLED="true")
    async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
        await round_trip(client)


async def test_wrong_keys_from_metadata_are_refused_by_s3(
    s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    """The signature really uses the handed-out keys: other keys get SeaweedFS's 403."""
    fake = FakeAWS(s3_server.access_key, "not-the-secret")
    fake.thread.start()
    try:
        env = chain_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=fake.url)
        async with S3Client(location(s3_server, bucket, env), timeout=10) as client:
            with pytest.raises(Exception, match="HTTP 403"):
                await client.put_bytes("x", b"x")
    finally:
        fake.server.shutdown()
        fake.server.server_close()


async def test_session_tokens_from_metadata_are_signed(fake: FakeAWS, tmp_path: Path) -> None:
    """The token of temporary credentials goes into every request (and presigned URL)."""
    fake.with_token = True
    env = chain_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=fake.url)
    found = S3Location.from_url("s3://bucket/p?endpoint=http://127.0.0.1:1", environ=env)
    async with S3Client(found) as client:
        current = client.credentials.current
        assert current is not None and current.session_token == "session-token-1"
        assert "session-token-1" not in repr(current) + repr(client.credentials) + repr(client)
        _, headers = client._signed_request("GET", "k", [], "UNSIGNED-PAYLOAD")
        assert headers["x-amz-security-token"] == "session-token-1"
        assert "X-Amz-Security-Token=session-token-1" in client.presign_get("k")
