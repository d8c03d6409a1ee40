"""The AWS credential chain (store/s3_credentials.py): its order, profile files, the cache.

No network: instance metadata is disabled (AWS_EC2_METADATA_DISABLED) or pointed at a closed
port; the HTTP sources are exercised against real local servers in
tests/integration/test_s3_credentials.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from cheeseboard.store import s3_credentials
from cheeseboard.store.s3 import S3Client, S3CredentialsError, S3Location
from cheeseboard.store.s3_credentials import (
    CredentialCache,
    Credentials,
    CredentialsError,
    SharedFilesProvider,
    default_chain,
)
from tests.support.server import free_port

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No credentials anywhere: files that do not exist, instance metadata off."""
    return {
        "HOME": str(tmp_path),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


async def test_no_source_names_every_one_tried(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(CredentialsError) as failure:
        await default_chain(base_env(tmp_path)).resolve(session)
    message = str(failure.value)
    assert message.startswith("no S3 credentials found; tried environment")
    for source in ("web identity", "shared files", "container", "instance metadata"):
        assert source in message
    # In botocore's order.
    positions = [
        message.index(name)
        for name in ("environment", "web identity", "shared files", "container", "instance")
    ]
    assert positions == sorted(positions)
    assert "AWS_EC2_METADATA_DISABLED=true" in message


async def test_an_unreachable_metadata_service_is_named(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    env = base_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    del env["AWS_EC2_METADATA_DISABLED"]
    with pytest.raises(CredentialsError, match=r"instance metadata \(http://127\.0\.0\.1:\d+: "):
        await default_chain(env).resolve(session)


async def test_environment_comes_first(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    write(
        tmp_path / "credentials", "[default]\naws_access_key_id = FILE\naws_secret_access_key = s\n"
    )
    env = base_env(tmp_path, AWS_ACCESS_KEY_ID="ENV", AWS_SECRET_ACCESS_KEY=SECRET)
    found, provider = await default_chain(env).resolve(session)
    assert (found.access_key, provider.name) == ("ENV", "environment")


async def test_web_identity_comes_before_profile_files(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A configured web identity is used (and its failure reported) before the files are read."""
    write(
        tmp_path / "credentials", "[default]\naws_access_key_id = FILE\naws_secret_access_key = s\n"
    )
    env = base_env(
        tmp_path,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "missing-token"),
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/cb",
    )
    with pytest.raises(CredentialsError, match=r"web identity: cannot read .*missing-token"):
        await default_chain(env).resolve(session)
    env.pop("AWS_ROLE_ARN")
    with pytest.raises(CredentialsError, match="AWS_ROLE_ARN is not set"):
        await default_chain(env).resolve(session)


async def test_profile_files_come_before_the_container(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    write(
        tmp_path / "credentials", "[default]\naws_access_key_id = FILE\naws_secret_access_key = s\n"
    )
    env = base_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:1/creds")
    found, provider = await default_chain(env).resolve(session)
    assert (found.access_key, provider.name, found.expiry) == ("FILE", "shared files", None)


def test_credentials_file_profile_with_session_token(tmp_path: Path) -> None:
    write(
        tmp_path / "credentials",
        "[default]\naws_access_key_id = D\naws_secret_access_key = d\n\n"
        "[ci]\naws_access_key_id = CI\naws_secret_access_key = ci-secret\n"
        "aws_session_token = ci-token\n",
    )
    found = SharedFilesProvider(base_env(tmp_path, AWS_PROFILE="ci")).load_sync()
    assert found is not None
    assert (found.access_key, found.secret_key, found.session_token) == (
        "CI",
        "ci-secret",
        "ci-token",
    )
    assert "profile 'ci'" in found.source
    default = SharedFilesProvider(base_env(tmp_path)).load_sync()
    assert default is not None and default.access_key == "D"


def test_config_file_profile_sections(tmp_path: Path) -> None:
    """In the config file a named profile is ``[profile NAME]``; ``[default]`` is plain."""
    write(
        tmp_path / "config",
        "[default]\nregion = eu-west-1\naws_access_key_id = CD\naws_secret_access_key = cd\n"
        "[profile dev]\naws_access_key_id = DEV\naws_secret_access_key = dev\n",
    )
    dev = SharedFilesProvider(base_env(tmp_path, AWS_PROFILE="dev")).load_sync()
    default = SharedFilesProvider(base_env(tmp_path)).load_sync()
    assert dev is not None and dev.access_key == "DEV"
    assert default is not None and default.access_key == "CD"


def test_credentials_file_wins_over_config_file(tmp_path: Path) -> None:
    write(
        tmp_path / "credentials", "[default]\naws_access_key_id = CRED\naws_secret_access_key = c\n"
    )
    write(tmp_path / "config", "[default]\naws_access_key_id = CONF\naws_secret_access_key = c\n")
    found = SharedFilesProvider(base_env(tmp_path)).load_sync()
    assert found is not None and found.access_key == "CRED"


def test_default_paths_are_under_home(tmp_path: Path) -> None:
    (tmp_path / ".aws").mkdir()
    write(
        tmp_path / ".aws" / "credentials",
        "[default]\naws_access_key_id = HOME\naws_secret_access_key = h\n",
    )
    found = SharedFilesProvider({"HOME": str(tmp_path)}).load_sync()
    assert found is not None and found.access_key == "HOME"


def test_a_profile_without_keys_goes_on_down_the_chain(tmp_path: Path) -> None:
    write(tmp_path / "config", "[default]\nregion = eu-west-1\n")
    assert SharedFilesProvider(base_env(tmp_path)).load_sync() is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\naws_access_key_id = ONLY\n", "only one of"),
        ("[default]\ncredential_process = /bin/get-keys\n", "uses credential_process"),
        ("[default]\nrole_arn = arn:x\nsource_profile = base\n", "uses role_arn, source_profile"),
        ("[default\naws_access_key_id = X\n", "cannot read"),
    ],
)
def test_unusable_profiles_stop_the_chain(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "credentials", text + f"aws_secret_access_key_typo = {SECRET}\n")
    with pytest.raises(CredentialsError, match=message) as failure:
        SharedFilesProvider(base_env(tmp_path)).load_sync()
    assert SECRET not in str(failure.value)


def test_an_explicit_profile_that_does_not_exist(tmp_path: Path) -> None:
    write(tmp_path / "credentials", "[default]\naws_access_key_id = D\naws_secret_access_key = d\n")
    with pytest.raises(CredentialsError, match="profile 'nope' \\(AWS_PROFILE\\) not found"):
        SharedFilesProvider(base_env(tmp_path, AWS_PROFILE="nope")).load_sync()


def test_container_plain_http_only_to_loopback_or_the_agent() -> None:
    from cheeseboard.store.s3_credentials import ContainerProvider

    provider = ContainerProvider({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil.example/x"})
    with pytest.raises(CredentialsError, match="neither loopback nor"):
        asyncio.run(provider.load(None))  # type: ignore[arg-type]
    relative = ContainerProvider({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds/abc"})
    assert relative.url == "http://169.254.170.2/v2/creds/abc"


def test_location_without_environment_keys_uses_the_chain(tmp_path: Path) -> None:
    location = S3Location.from_url("s3://bucket/p", environ=base_env(tmp_path))
    assert location.access_key is None and location.chain is not None
    assert "chain" not in repr(location)
    names = [provider.name for provider in location.chain.providers]
    assert names == [
        "environment",
        "web identity",
        "shared files",
        "container",
        "instance metadata",
    ]


async def test_client_without_credentials_fails_on_first_request(tmp_path: Path) -> None:
    location = S3Location.from_url(
        "s3://bucket/p?endpoint=http://127.0.0.1:1", environ=base_env(tmp_path)
    )
    async with S3Client(location) as client:
        with pytest.raises(S3CredentialsError, match="no S3 credentials found; tried") as failure:
            await client.put_bytes("x", b"x")
        assert failure.value.code == "NoCredentials"
        with pytest.raises(S3CredentialsError):
            client.presign_get("x")


def test_secrets_stay_out_of_reprs() -> None:
    credentials = Credentials("AKID", SECRET, "token-value", expiry=1.0, source="test")
    cache = CredentialCache(s3_credentials.StaticProvider(credentials), credentials)
    for text in (repr(credentials), repr(cache), str(credentials)):
        assert SECRET not in text and "token-value" not in text


class CountingProvider:
    """Hands out numbered credentials expiring ``lifetime`` s after the (fake) clock's now."""

    name = "counting"

    def __init__(self, clock: list[float], lifetime: float, delay: float = 0.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0
        self.fail = False

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise CredentialsError("counting: down")
        return Credentials(
            f"AK{self.calls}", "s", "t", expiry=self.clock[0] + self.lifetime, source="counting"
        )


async def test_cache_refreshes_five_minutes_early_one_at_a_time(
    session: aiohttp.ClientSession,
) -> None:
    clock = [1000.0]
    provider = CountingProvider(clock, lifetime=3600, delay=0.05)
    cache = CredentialCache(provider, clock=lambda: clock[0])
    first = await asyncio.gather(*(cache.get(session) for _ in range(20)))
    assert {c.access_key for c in first} == {"AK1"} and provider.calls == 1
    clock[0] += 3600 - 301  # 301 s left: still fresh
    assert (await cache.get(session)).access_key == "AK1"
    clock[0] += 2  # 299 s left: refreshed, once for all the concurrent callers
    again = await asyncio.gather(*(cache.get(session) for _ in range(20)))
    assert {c.access_key for c in again} == {"AK2"} and provider.calls == 2


async def test_a_failed_refresh_keeps_valid_credentials(session: aiohttp.ClientSession) -> None:
    clock = [0.0]
    provider = CountingProvider(clock, lifetime=600)
    cache = CredentialCache(provider, clock=lambda: clock[0])
    assert (await cache.get(session)).access_key == "AK1"
    provider.fail = True
    clock[0] = 400.0  # 200 s left
    assert (await cache.get(session)).access_key == "AK1"
    assert (await cache.get(session)).access_key == "AK1"
    assert provider.calls == 2  # no retry within RETRY_AFTER_FAILURE
    clock[0] = 601.0  # expired: the failure is raised
    with pytest.raises(CredentialsError, match="counting: down"):
        await cache.get(session)
    provider.fail = False
    clock[0] += 10
    assert (await cache.get(session)).access_key.startswith("AK")


def test_clock_default_is_wall_time() -> None:
    cache = CredentialCache(CountingProvider([0.0], 1))
    assert abs(cache.clock() - time.time()) < 5
