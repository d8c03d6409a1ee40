"""The two storage set-ups a test can run a server on: ``sqlite`` (the data directory alone)
and ``postgres+s3`` (a fresh PostgreSQL database and a fresh SeaweedFS bucket)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.seaweed import SeaweedServer
from tests.support.server import ServerFactory

BACKENDS = ("sqlite", "postgres+s3")
# Settings that would change what a --blob-url means, removed for the servers a test starts.
_AWS_OVERRIDES = (
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def fresh_bucket_url(s3: SeaweedServer, env: pytest.MonkeyPatch) -> str:
    """A ``--blob-url`` on a new bucket, with the server's credentials put in ``env``."""
    bucket = f"cb-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(bucket)
    for name in _AWS_OVERRIDES:
        env.delenv(name, raising=False)
    for name, value in s3.env.items():
        env.setenv(name, value)
    return s3.url(bucket)


def factory_for(
    backend: str, request: pytest.FixtureRequest, base: Path, env: pytest.MonkeyPatch
) -> ServerFactory:
    """A ServerFactory on ``backend`` (one of BACKENDS); PostgreSQL and S3 come from the
    session's ``postgres_server`` and ``s3_server`` fixtures (which skip, or fail under
    CHEESEBOARD_REQUIRE_ALL, when they are missing)."""
    if backend == "sqlite":
        return ServerFactory(base)
    from tests.support.postgres import create_database

    postgres = request.getfixturevalue("postgres_server")
    blob_url = fresh_bucket_url(request.getfixturevalue("s3_server"), env)
    return ServerFactory(base, database_url=create_database(postgres), blob_url=blob_url)
