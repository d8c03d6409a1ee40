"""Where the S3 client's credentials come from: the standard AWS chain, in botocore's order.

1. Environment: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` [/ ``AWS_SESSION_TOKEN``].
2. Web identity (EKS IRSA and the like): ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``
   [+ ``AWS_ROLE_SESSION_NAME``], exchanged with STS ``AssumeRoleWithWebIdentity`` (an unsigned
   request) at ``AWS_ENDPOINT_URL_STS`` or ``https://sts.<region>.amazonaws.com``.
3. Shared files: ``AWS_SHARED_CREDENTIALS_FILE`` (``~/.aws/credentials``), then ``AWS_CONFIG_FILE``
   (``~/.aws/config``), profile ``AWS_PROFILE`` (``default``). Static keys only: a profile that
   needs ``credential_process``, ``role_arn``/``source_profile`` or SSO is refused with a message
   rather than skipped (the chain would otherwise quietly pick other credentials).
4. Container (ECS, EKS Pod Identity): ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` or ``_FULL_URI``,
   with ``AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]``.
5. EC2 instance metadata, IMDSv2 (token PUT, then the role's credentials), at
   ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (``http://169.254.169.254``) unless
   ``AWS_EC2_METADATA_DISABLED=true``; 1 s timeouts, 2 attempts.

A source that is not configured answers ``None`` and the chain goes on; a source that is
configured but broken raises ``CredentialsError`` and the chain stops there (as botocore does).
Temporary credentials are refreshed by ``CredentialCache`` five minutes before they expire, by
the source that produced them, one refresh at a time. Secret keys and session tokens appear in no
repr, message or log line.
"""

from __future__ import annotations

import asyncio
import configparser
import ipaddress
import json
import logging
import os
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp

__all__ = [
    "REFRESH_EARLY",
    "ContainerProvider",
    "CredentialCache",
    "CredentialChain",
    "CredentialProvider",
    "Credentials",
    "CredentialsError",
    "EnvironmentProvider",
    "InstanceMetadataProvider",
    "SharedFilesProvider",
    "StaticProvider",
    "WebIdentityProvider",
    "default_chain",
]

log = logging.getLogger(__name__)

REFRESH_EARLY = 300.0
"""Temporary credentials are replaced this many seconds before they expire."""
RETRY_AFTER_FAILURE = 5.0
"""After a failed lookup, callers get the same error for this long instead of waiting again."""
IMDS_TIMEOUT = 1.0
IMDS_ATTEMPTS = 2
IMDS_TOKEN_TTL = 21600
CONTAINER_TIMEOUT = 2.0
CONTAINER_ATTEMPTS = 2
STS_TIMEOUT = 10.0
_MAX_ANSWER = 64 * 1024
_ECS_HOST = "http://169.254.170.2"
# Plain-http full URIs botocore accepts besides loopback: the ECS and EKS Pod Identity agents.
_CONTAINER_HOSTS = {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"}
_UNSUPPORTED_PROFILE_KEYS = (
    "credential_process",
    "role_arn",
    "source_profile",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
)


class CredentialsError(Exception):
    """A configured source could not give credentials, or no source had any (the message says
    which were tried). Never contains a secret."""


@dataclass(frozen=True)
class Credentials:
    """One set of keys; ``expiry`` (epoch seconds) is None for keys that do not expire."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiry: float | None = None
    source: str = ""


class CredentialProvider(Protocol):
    """One source of the chain: ``load`` answers credentials, or None if not configured here."""

    name: str

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None: ...


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _parse_expiry(value: str, source: str) -> float:
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise CredentialsError(f"{source}: unreadable expiration {value[:40]!r}") from None


def _from_json(body: bytes, source: str) -> Credentials:
    """The ``AccessKeyId``/``SecretAccessKey``/``Token``/``Expiration`` document of IMDS and ECS."""
    try:
        document = json.loads(body)
    except ValueError:
        raise CredentialsError(f"{source}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{source}: the answer is not a JSON object")
    code = document.get("Code", "Success")
    if code != "Success":
        raise CredentialsError(f"{source}: answered Code {str(code)[:60]!r}")
    access_key, secret_key = document.get("AccessKeyId"), document.get("SecretAccessKey")
    if not isinstance(access_key, str) or not isinstance(secret_key, str):
        raise CredentialsError(f"{source}: the answer has no AccessKeyId/SecretAccessKey")
    token = document.get("Token")
    expiration = document.get("Expiration")
    return Credentials(
        access_key=access_key,
        secret_key=secret_key,
        session_token=token if isinstance(token, str) and token else None,
        expiry=_parse_expiry(expiration, source) if isinstance(expiration, str) else None,
        source=source,
    )


async def _read(response: aiohttp.ClientResponse) -> bytes:
    body = await response.content.read(_MAX_ANSWER + 1)
    if len(body) > _MAX_ANSWER:
        raise CredentialsError(f"answer from {response.url.host} larger than {_MAX_ANSWER} bytes")
    return body


class StaticProvider:
    """Fixed keys (those of the environment, or given by the caller)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.name = credentials.source or "static keys"

    def __repr__(self) -> str:
        return f"StaticProvider({self.name!r})"

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        return self.credentials


class EnvironmentProvider:
    """``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``)."""

    name = "environment"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)

    def static(self) -> Credentials | None:
        access_key = _env(self.environ, "AWS_ACCESS_KEY_ID")
        secret_key = _env(self.environ, "AWS_SECRET_ACCESS_KEY")
        if access_key is None and secret_key is None:
            return None
        if access_key is None or secret_key is None:
            missing = "AWS_SECRET_ACCESS_KEY" if secret_key is None else "AWS_ACCESS_KEY_ID"
            raise CredentialsError(f"S3 credentials missing: set {missing}")
        return Credentials(
            access_key,
            secret_key,
            _env(self.environ, "AWS_SESSION_TOKEN"),
            source="environment (AWS_ACCESS_KEY_ID)",
        )

    def missing(self) -> str:
        return "environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set)"

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        return self.static()


class WebIdentityProvider:
    """STS ``AssumeRoleWithWebIdentity`` with the token file's contents (re-read each time)."""

    name = "web identity"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.token_file = _env(environ, "AWS_WEB_IDENTITY_TOKEN_FILE")
        self.role_arn = _env(environ, "AWS_ROLE_ARN")
        self.session_name = _env(environ, "AWS_ROLE_SESSION_NAME")
        region = _env(environ, "AWS_REGION") or _env(environ, "AWS_DEFAULT_REGION")
        self.endpoint = (_env(environ, "AWS_ENDPOINT_URL_STS") or "").rstrip("/") or (
            f"https://sts.{region}.amazonaws.com" if region else "https://sts.amazonaws.com"
        )

    def missing(self) -> str:
        return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not set)"

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        if self.token_file is None and self.role_arn is None:
            return None
        source = f"web identity ({self.role_arn} via {self.endpoint})"
        if self.token_file is None or self.role_arn is None:
            unset = "AWS_ROLE_ARN" if self.role_arn is None else "AWS_WEB_IDENTITY_TOKEN_FILE"
            raise CredentialsError(f"web identity: {unset} is not set")
        try:
            token = (await asyncio.to_thread(Path(self.token_file).read_text)).strip()
        except OSError as exc:
            raise CredentialsError(
                f"web identity: cannot read {self.token_file}: {exc.strerror}"
            ) from None
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name or f"cheeseboard-{int(time.time())}",
            "WebIdentityToken": token,
        }
        try:
            async with session.post(
                self.endpoint + "/",
                data=form,
                headers={"Accept": "application/xml"},
                timeout=aiohttp.ClientTimeout(total=STS_TIMEOUT),
                allow_redirects=False,
            ) as response:
                status, body = response.status, await _read(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CredentialsError(f"{source}: STS unreachable: {_reason(exc)}") from None
        try:
            # The endpoint is the operator's STS; expat refuses external entities.
            root = ET.fromstring(body)  # noqa: S314
        except ET.ParseError:
            raise CredentialsError(f"{source}: HTTP {status}, unreadable XML") from None
        if status != 200:
            code = _xml_text(root, "Code") or "Error"
            message = _xml_text(root, "Message")[:200]
            raise CredentialsError(f"{source}: HTTP {status} {code}: {message}")
        found = root.find(".//{*}Credentials")
        if found is None:
            raise CredentialsError(f"{source}: the answer has no Credentials")
        access_key = _xml_text(found, "AccessKeyId")
        secret_key = _xml_text(found, "SecretAccessKey")
        if not access_key or not secret_key:
            raise CredentialsError(f"{source}: the answer has no AccessKeyId/SecretAccessKey")
        expiration = _xml_text(found, "Expiration")
        return Credentials(
            access_key,
            secret_key,
            _xml_text(found, "SessionToken") or None,
            expiry=_parse_expiry(expiration, source) if expiration else None,
            source=source,
        )


def _xml_text(element: ET.Element, tag: str) -> str:
    found = element.find(f".//{{*}}{tag}")
    return (found.text or "").strip() if found is not None else ""


def _reason(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__


class SharedFilesProvider:
    """Static keys of a profile in the shared credentials file, then in the config file."""

    name = "shared files"

    def __init__(self, environ: Mapping[str, str]) -> None:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        self.credentials_file = Path(
            _env(environ, "AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"
        ).expanduser()
        self.config_file = Path(_env(environ, "AWS_CONFIG_FILE") or home / ".aws" / "config")
        self.config_file = self.config_file.expanduser()
        self.explicit_profile = _env(environ, "AWS_PROFILE")
        self.profile = self.explicit_profile or "default"

    def missing(self) -> str:
        return (
            f"shared files (no profile {self.profile!r} with keys in {self.credentials_file} "
            f"or {self.config_file})"
        )

    def _section(self, path: Path, names: Sequence[str]) -> dict[str, str] | None:
        parser = configparser.RawConfigParser(default_section="\x00none")
        try:
            with path.open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            # configparser messages may quote lines of the file, so only its type is named.
            kind = type(exc).__name__
            raise CredentialsError(f"shared files: cannot read {path}: {kind}") from None
        for name in names:
            if parser.has_section(name):
                return {key.lower(): value.strip() for key, value in parser.items(name)}
        return None

    def load_sync(self) -> Credentials | None:
        sections = (
            (self.credentials_file, [self.profile]),
            (self.config_file, [f"profile {self.profile}", self.profile]),
        )
        found_any = False
        for path, names in sections:
            values = self._section(path, names)
            if values is None:
                continue
            found_any = True
            source = f"shared files (profile {self.profile!r} in {path})"
            access_key = values.get("aws_access_key_id")
            secret_key = values.get("aws_secret_access_key")
            if access_key and secret_key:
                token = values.get("aws_session_token") or values.get("aws_security_token")
                return Credentials(access_key, secret_key, token or None, source=source)
            if access_key or secret_key:
                raise CredentialsError(
                    f"{source}: has only one of aws_access_key_id and aws_secret_access_key"
                )
            unsupported = [key for key in _UNSUPPORTED_PROFILE_KEYS if key in values]
            if unsupported:
                raise CredentialsError(
                    f"{source}: uses {', '.join(unsupported)}, which cheeseboard does not support; "
                    "give the profile static keys or use another credential source"
                )
        if self.explicit_profile and not found_any:
            raise CredentialsError(
                f"shared files: profile {self.profile!r} (AWS_PROFILE) not found in "
                f"{self.credentials_file} or {self.config_file}"
            )
        return None

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        return await asyncio.to_thread(self.load_sync)


class ContainerProvider:
    """The ECS / EKS Pod Identity agent: a GET answered with the JSON credentials document."""

    name = "container"

    def __init__(self, environ: Mapping[str, str]) -> None:
        relative = _env(environ, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        full = _env(environ, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        self.url = _ECS_HOST + relative if relative else full
        self.token = _env(environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
        self.token_file = _env(environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")

    def missing(self) -> str:
        return "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI not set)"

    def _check_url(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            return
        if parts.scheme != "http" or not parts.hostname:
            raise CredentialsError("container: the credentials URI must be http:// or https://")
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback and host not in _CONTAINER_HOSTS:
            raise CredentialsError(
                f"container: plain-http credentials URI host {host!r} is neither loopback nor "
                "the ECS/EKS agent"
            )

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        if self.url is None:
            return None
        self._check_url(self.url)
        source = f"container ({urllib.parse.urlsplit(self.url).netloc})"
        headers: dict[str, str] = {}
        token = self.token
        if self.token_file:
            try:
                token = (await asyncio.to_thread(Path(self.token_file).read_text)).strip()
            except OSError as exc:
                raise CredentialsError(
                    f"container: cannot read {self.token_file}: {exc.strerror}"
                ) from None
        if token:
            headers["Authorization"] = token
        failure = ""
        for _ in range(CONTAINER_ATTEMPTS):
            try:
                async with session.get(
                    self.url,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=CONTAINER_TIMEOUT),
                    allow_redirects=False,
                ) as response:
                    body = await _read(response)
                    if response.status == 200:
                        return _from_json(body, source)
                    failure = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = _reason(exc)
        raise CredentialsError(f"{source}: {failure}")


class InstanceMetadataProvider:
    """EC2 instance metadata: IMDSv2 token, role name, then the role's credentials.

    A token PUT refused with 403/404/405 falls back to IMDSv1 requests, as botocore does.
    """

    name = "instance metadata"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.disabled = (_env(environ, "AWS_EC2_METADATA_DISABLED") or "").lower() == "true"
        endpoint = _env(environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254"
        self.endpoint = endpoint.rstrip("/")
        self.last_failure = "not tried"

    def missing(self) -> str:
        if self.disabled:
            return "instance metadata (AWS_EC2_METADATA_DISABLED=true)"
        return f"instance metadata ({self.endpoint}: {self.last_failure})"

    async def _request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        headers: Mapping[str, str],
    ) -> tuple[int, bytes] | None:
        """(status, body), or None when the endpoint did not answer in two attempts."""
        for _ in range(IMDS_ATTEMPTS):
            try:
                async with session.request(
                    method,
                    self.endpoint + path,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=IMDS_TIMEOUT),
                    allow_redirects=False,
                ) as response:
                    return response.status, await _read(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.last_failure = _reason(exc)
        return None

    async def load(self, session: aiohttp.ClientSession) -> Credentials | None:
        if self.disabled:
            return None
        answer = await self._request(
            session,
            "PUT",
            "/latest/api/token",
            {"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL)},
        )
        if answer is None:
            return None
        headers: dict[str, str] = {}
        status, body = answer
        if status == 200:
            headers["X-aws-ec2-metadata-token"] = body.decode(errors="replace").strip()
        elif status not in (403, 404, 405):
            self.last_failure = f"token request answered HTTP {status}"
            return None
        base = "/latest/meta-data/iam/security-credentials/"
        answer = await self._request(session, "GET", base, headers)
        if answer is None:
            return None
        status, body = answer
        role = body.decode(errors="replace").strip().splitlines()[0:1]
        if status != 200 or not role:
            self.last_failure = f"no IAM role (HTTP {status})"
            return None
        source = f"instance metadata ({self.endpoint}, role {role[0]})"
        answer = await self._request(session, "GET", base + urllib.parse.quote(role[0]), headers)
        if answer is None:
            raise CredentialsError(f"{source}: {self.last_failure}")
        status, body = answer
        if status != 200:
            raise CredentialsError(f"{source}: HTTP {status}")
        return _from_json(body, source)


class CredentialChain:
    """The sources in order; ``resolve`` returns the first credentials and the source's provider."""

    def __init__(self, providers: Sequence[Any]) -> None:
        self.providers = list(providers)

    def __repr__(self) -> str:
        return f"CredentialChain({[provider.name for provider in self.providers]!r})"

    async def resolve(
        self, session: aiohttp.ClientSession
    ) -> tuple[Credentials, CredentialProvider]:
        tried: list[str] = []
        for provider in self.providers:
            try:
                found = await provider.load(session)
            except CredentialsError as exc:
                before = f" (tried before: {'; '.join(tried)})" if tried else ""
                raise CredentialsError(f"{exc}{before}") from None
            if found is not None:
                return found, provider
            tried.append(provider.missing() if hasattr(provider, "missing") else provider.name)
        raise CredentialsError("no S3 credentials found; tried " + "; ".join(tried))


def default_chain(environ: Mapping[str, str]) -> CredentialChain:
    """botocore's order over the sources cheeseboard supports, configured from ``environ``."""
    return CredentialChain(
        [
            EnvironmentProvider(environ),
            WebIdentityProvider(environ),
            SharedFilesProvider(environ),
            ContainerProvider(environ),
            InstanceMetadataProvider(environ),
        ]
    )


class CredentialCache:
    """The current credentials of one client, refreshed ``REFRESH_EARLY`` s before they expire.

    The first ``get`` walks the chain; later refreshes ask the source that answered. Only one
    lookup runs at a time (concurrent callers wait for it). When a refresh fails while the old
    credentials are still valid they stay in use, and the next try comes ``RETRY_AFTER_FAILURE``
    seconds later. ``clock`` (epoch seconds) can be replaced in tests.
    """

    def __init__(
        self,
        chain: CredentialChain | CredentialProvider,
        current: Credentials | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.clock = clock
        self._current = current
        self._provider: CredentialProvider | None = (
            None if isinstance(chain, CredentialChain) else chain
        )
        self._lock = asyncio.Lock()
        self._failure: CredentialsError | None = None
        self._failed_at = 0.0
        self.refreshes = 0
        """Lookups that produced credentials (for tests and logs)."""

    def __repr__(self) -> str:
        source = self._current.source if self._current else "not loaded"
        return f"CredentialCache({source!r})"

    @property
    def current(self) -> Credentials | None:
        """The last credentials loaded (for synchronous signing such as presigned URLs)."""
        return self._current

    def fresh(self, credentials: Credentials | None) -> bool:
        if credentials is None:
            return False
        return credentials.expiry is None or self.clock() < credentials.expiry - REFRESH_EARLY

    async def get(self, session: aiohttp.ClientSession) -> Credentials:
        """Credentials good for at least ``REFRESH_EARLY`` seconds (or not expiring)."""
        current = self._current
        if self.fresh(current):
            assert current is not None
            return current
        async with self._lock:
            current = self._current
            if self.fresh(current):
                assert current is not None
                return current
            now = self.clock()
            usable = current is not None and (current.expiry is None or now < current.expiry)
            if self._failure is not None and now - self._failed_at < RETRY_AFTER_FAILURE:
                if usable:
                    assert current is not None
                    return current
                raise self._failure
            try:
                if self._provider is None:
                    assert isinstance(self.chain, CredentialChain)
                    found, self._provider = await self.chain.resolve(session)
                else:
                    loaded = await self._provider.load(session)
                    if loaded is None:
                        raise CredentialsError(f"{self._provider.name}: no longer has credentials")
                    found = loaded
            except CredentialsError as exc:
                self._failure, self._failed_at = exc, now
                if usable:
                    assert current is not None
                    log.warning("S3 credentials refresh failed, keeping the current ones: %s", exc)
                    return current
                raise
            self._failure = None
            self._current = found
            self.refreshes += 1
            expires = (
                "never" if found.expiry is None else f"in {int(found.expiry - self.clock())} s"
            )
            log.info("S3 credentials from %s, expiring %s", found.source, expires)
            return found


def environment_credentials(environ: Mapping[str, str] = os.environ) -> Credentials | None:
    """Keys from the ``AWS_*`` variables, None if neither is set; one without the other raises."""
    return EnvironmentProvider(environ).static()
