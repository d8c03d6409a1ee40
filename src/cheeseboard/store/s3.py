"""A small async S3 client of our own: AWS Signature Version 4 over aiohttp.

Why not boto3/aiobotocore: the blob store needs a handful of object calls (put, ranged get, head,
delete, list, multipart for big files, presigned GETs), aiohttp is already in the server, and
those libraries would bring a large dependency tree for them. Addressing is path-style
(``{endpoint}/{bucket}/{key}``), which AWS and the S3-compatible servers (SeaweedFS, MinIO, Ceph
RGW, Garage, R2) all accept, and which works for bucket names with dots over TLS.

Secrets never go into URLs, exception messages or reprs. Credentials come from the standard
AWS chain (store/s3_credentials.py): ``AWS_*`` variables, web identity, profile files, container
and instance metadata; temporary ones are refreshed before they expire and every request is
signed with the current ones.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import hmac
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType

import aiohttp
import yarl

from cheeseboard import __version__
from cheeseboard.store.s3_credentials import (
    CredentialCache,
    CredentialChain,
    Credentials,
    CredentialsError,
    StaticProvider,
    default_chain,
    environment_credentials,
)
from cheeseboard.tls import client_context

__all__ = [
    "MIN_PART_SIZE",
    "MULTIPART_THRESHOLD",
    "PART_SIZE",
    "S3Client",
    "S3CredentialsError",
    "S3Error",
    "S3Location",
    "S3NotFound",
    "S3Object",
    "S3Unavailable",
]

MULTIPART_THRESHOLD = 64 * 1024 * 1024
"""Files up to this size go up in one PUT; bigger ones in parts (a failed part costs one part)."""
PART_SIZE = 16 * 1024 * 1024
"""Default multipart part size (raised automatically to stay within S3's 10,000 parts)."""
MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part (all parts but the last)."""
MAX_PARTS = 10_000
MAX_SINGLE_PUT = 5 * 1024**3
"""S3 refuses single PUTs above 5 GiB."""
CHUNK_SIZE = 256 * 1024
"""Read and stream in pieces of this size: memory stays flat whatever the object size."""

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ALGORITHM = "AWS4-HMAC-SHA256"
_SERVICE = "s3"
_MAX_XML = 16 * 1024 * 1024  # a ListObjectsV2 page of 1000 long keys is well under 1 MiB
_MAX_ERROR_BODY = 64 * 1024
_MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # SigV4's limit
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a
# letter or digit (the rules for new AWS buckets; S3-compatible servers accept the same).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
_REGION = re.compile(r"[A-Za-z0-9_-]{1,64}")
_QUERY_KEYS = ("endpoint", "region")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` set to a non-empty value (an empty variable counts as unset)."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _check_path(value: str, what: str) -> None:
    """Refuse empty, ``.`` and ``..`` segments and control characters.

    S3 keeps them literally, but proxies and HTTP stacks normalise them away, so a key such as
    ``a/../b`` would be signed for one path and answered for another.
    """
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"{what} {value!r} has an empty, '.' or '..' path segment")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"{what} {value!r} contains control characters")


def _normalize_endpoint(endpoint: str, source: str) -> str:
    """``scheme://host[:port]`` without a default port, so the Host we sign is the one sent."""
    parts = urllib.parse.urlsplit(endpoint)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"S3 endpoint from {source} must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"S3 endpoint from {source} must not contain credentials; "
            "use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"S3 endpoint from {source} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"S3 endpoint from {source} has no host: {endpoint!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"S3 endpoint from {source} must be scheme://host[:port] only, got {endpoint!r}"
        )
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


@dataclass(frozen=True)
class S3Location:
    """Where blobs live: a bucket and key prefix on an endpoint, with the credentials to use.

    Parsed from ``--blob-url s3://bucket/prefix?endpoint=...&region=...``. The keys are the
    environment's (``access_key`` set), or else ``chain`` says where to look them up when the
    client starts. The secret key, session token and chain are left out of ``repr()`` so the
    object can be logged.
    """

    bucket: str
    prefix: str
    endpoint: str
    region: str
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    chain: CredentialChain | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] = os.environ) -> S3Location:
        """Parse ``s3://bucket[/prefix][?endpoint=URL&region=NAME]``; credentials from ``environ``.

        The endpoint falls back to AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS's regional
        endpoint; the region to AWS_REGION, AWS_DEFAULT_REGION, then us-east-1. Credentials are
        AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set; otherwise the rest of the AWS chain
        (``s3_credentials.default_chain``) is looked up by the client, without any I/O here.
        Raises ``ValueError`` on anything invalid (one of the two keys without the other too),
        without echoing the URL's query values or secrets.
        """
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme.lower() != "s3":
            raise ValueError("blob URL must start with s3://")
        if "@" in parts.netloc:
            raise ValueError(
                "blob URL must not contain credentials; "
                "use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        bucket = parts.netloc
        if not bucket:
            raise ValueError("blob URL has no bucket: expected s3://bucket[/prefix]")
        if (
            not _BUCKET.fullmatch(bucket)
            or ".." in bucket
            or ".-" in bucket
            or "-." in bucket
            or _IPV4.fullmatch(bucket)
        ):
            raise ValueError(
                f"invalid S3 bucket name {bucket!r}: 3-63 lowercase letters, digits, dots or "
                "hyphens, starting and ending with a letter or digit"
            )
        if parts.fragment:
            raise ValueError("blob URL must not have a #fragment")
        prefix = parts.path.strip("/")
        if prefix:
            _check_path(prefix, "S3 prefix")

        options: dict[str, str] = {}
        if parts.query:
            try:
                pairs = urllib.parse.parse_qsl(
                    parts.query, keep_blank_values=True, strict_parsing=True
                )
            except ValueError:
                raise ValueError("blob URL has a malformed query string") from None
            for key, value in pairs:
                if key not in _QUERY_KEYS:
                    # Name the key, never the value: it may be a secret put there by mistake.
                    raise ValueError(
                        f"unknown blob URL parameter {key!r} (allowed: {', '.join(_QUERY_KEYS)}); "
                        "credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                        "AWS_SESSION_TOKEN, never from the URL"
                    )
                if key in options:
                    raise ValueError(f"blob URL parameter {key!r} is given twice")
                if not value.strip():
                    raise ValueError(f"blob URL parameter {key!r} is empty")
                options[key] = value.strip()

        region = options.get("region") or _env(environ, "AWS_REGION", "AWS_DEFAULT_REGION")
        region = region or "us-east-1"
        if not _REGION.fullmatch(region):
            raise ValueError(f"invalid S3 region {region!r}")

        if "endpoint" in options:
            endpoint, source = options["endpoint"], "the blob URL"
        elif found := _env(environ, "AWS_ENDPOINT_URL_S3"):
            endpoint, source = found, "AWS_ENDPOINT_URL_S3"
        elif found := _env(environ, "AWS_ENDPOINT_URL"):
            endpoint, source = found, "AWS_ENDPOINT_URL"
        else:
            endpoint, source = f"https://s3.{region}.amazonaws.com", "the region"
        endpoint = _normalize_endpoint(endpoint, source)

        try:
            static = environment_credentials(environ)
        except CredentialsError as exc:
            raise ValueError(str(exc)) from None
        if static is None:
            return cls(bucket, prefix, endpoint, region, chain=default_chain(environ))
        return cls(
            bucket=bucket,
            prefix=prefix,
            endpoint=endpoint,
            region=region,
            access_key=static.access_key,
            secret_key=static.secret_key,
            session_token=static.session_token,
        )

    def static_credentials(self) -> Credentials | None:
        """The fixed keys of this location, None when they come from ``chain``."""
        if self.access_key is None or self.secret_key is None:
            return None
        return Credentials(
            self.access_key, self.secret_key, self.session_token, source="environment"
        )

    def redacted(self) -> str:
        """The location as a URL for logs and errors: no credentials, not even the key id."""
        path = f"/{self.prefix}" if self.prefix else ""
        query = urllib.parse.urlencode(
            {"endpoint": self.endpoint, "region": self.region}, safe=":/"
        )
        return f"s3://{self.bucket}{path}?{query}"


class S3Error(Exception):
    """A request S3 answered with an error (or, for ``S3Unavailable``, did not answer at all)."""

    def __init__(
        self, operation: str, key: str, status: int | None, code: str, message: str
    ) -> None:
        super().__init__(operation, key, status, code, message)
        self.operation = operation
        self.key = key
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        answer = f"HTTP {self.status} {self.code}" if self.status is not None else self.code
        detail = f": {self.message}" if self.message else ""
        return f"S3 {self.operation} {self.key} failed: {answer}{detail}"


class S3CredentialsError(S3Error):
    """No credentials: no source of the chain had any, or a configured one failed."""


class S3NotFound(S3Error):
    """The object (or bucket) does not exist: 404."""


class S3Unavailable(S3Error):
    """S3 could not be reached, timed out, or a gateway in front of it failed (502/503/504)."""


@dataclass(frozen=True)
class S3Object:
    """A GET in progress: sizes known from the headers, body still to be read from ``chunks``."""

    size: int
    """Bytes in this answer (the range's length for a ranged GET)."""
    total: int
    """Size of the whole object."""
    etag: str | None
    chunks: AsyncIterator[bytes]
    """The body in pieces of at most ``CHUNK_SIZE`` bytes."""


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _quote(value: str, safe: str = "") -> str:
    """RFC 3986 percent-encoding as SigV4 wants it: only ``A-Za-z0-9-._~`` (and ``safe``) kept."""
    return urllib.parse.quote(value, safe=safe)


def _canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Encoded ``k=v`` pairs sorted by encoded key then value; also the query string we send."""
    encoded = sorted((_quote(key), _quote(value)) for key, value in params)
    return "&".join(f"{key}={value}" for key, value in encoded)


def _content_disposition(filename: str) -> str:
    """``attachment; filename="..."``, plus RFC 6266 ``filename*`` for names beyond ASCII."""
    plain = filename.isascii() and filename.isprintable() and not any(c in filename for c in '"\\')
    if plain:
        return f'attachment; filename="{filename}"'
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{_quote(filename)}"


def _parse_time(value: str) -> float:
    """An S3 timestamp (ISO 8601 or RFC 1123) as epoch seconds; 0.0 if unreadable."""
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _parse_xml(body: bytes) -> ET.Element:
    # The document comes from the S3 endpoint the operator configured, and expat refuses external
    # entities and caps entity expansion, so the stdlib parser is acceptable here.
    return ET.fromstring(body)  # noqa: S314


def _text(element: ET.Element, tag: str) -> str:
    """Text of the first ``tag`` child in any (or no) XML namespace; '' if absent."""
    found = element.find(f"{{*}}{tag}")
    return (found.text or "") if found is not None else ""


class _FileBody:
    """``length`` bytes of an open file from ``offset``, streamed as a request body.

    The bytes are hashed on the way and the last piece is only handed to aiohttp once the digest
    matches ``sha256_hex``: a file that changed since it was hashed never completes its request,
    so S3 cannot store it (a signed payload hash would make S3 refuse it too). A failure is kept in
    ``error``, because aiohttp reports it as a generic connection error.
    """

    def __init__(self, fd: int, path: Path, offset: int, length: int, sha256_hex: str) -> None:
        self.fd = fd
        self.path = path
        self.offset = offset
        self.length = length
        self.sha256_hex = sha256_hex
        self.error: Exception | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            digest = hashlib.sha256()
            position, end = self.offset, self.offset + self.length
            if self.length == 0:
                self._check(digest)
            while position < end:
                chunk = os.pread(self.fd, min(CHUNK_SIZE, end - position), position)
                if not chunk:
                    raise ValueError(
                        f"{self.path} shrank while uploading to S3: "
                        f"ended at {position}, expected {end} bytes"
                    )
                digest.update(chunk)
                position += len(chunk)
                if position == end:
                    self._check(digest)
                yield chunk
        except Exception as exc:
            self.error = exc
            raise

    def _check(self, digest: hashlib._Hash) -> None:
        if digest.hexdigest() != self.sha256_hex:
            raise ValueError(
                f"{self.path} changed while uploading to S3: the {self.length} bytes at offset "
                f"{self.offset} no longer have the sha256 they were hashed with"
            )


def _hash_range(fd: int, path: Path, offset: int, length: int, whole: hashlib._Hash) -> str:
    """sha256 of a file range (also fed to ``whole``); runs in a thread, pread keeps no offset."""
    digest = hashlib.sha256()
    position, end = offset, offset + length
    while position < end:
        chunk = os.pread(fd, min(1024 * 1024, end - position), position)
        if not chunk:
            raise ValueError(f"{path} shrank while uploading to S3: ended at {position}")
        digest.update(chunk)
        whole.update(chunk)
        position += len(chunk)
    return digest.hexdigest()


class S3Client:
    """Object calls on one ``S3Location`` over one aiohttp session (``start``/``close``).

    Names passed to the methods are relative to the location's prefix; ``key(name)`` gives the S3
    key. ``multipart_threshold`` and ``part_size`` default to the module constants (tests lower
    them to exercise multipart uploads with small files).
    """

    def __init__(
        self,
        location: S3Location,
        timeout: float = 60.0,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        ca_bundle: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if not 0 <= multipart_threshold <= MAX_SINGLE_PUT:
            raise ValueError(f"multipart_threshold must be between 0 and {MAX_SINGLE_PUT}")
        self.location = location
        self.timeout = timeout
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._ca_bundle = ca_bundle  # --ca-bundle: CAs trusted besides the system's (tls.py)
        self._host = location.endpoint.split("://", 1)[1]
        self._session: aiohttp.ClientSession | None = None
        self._signing_keys: dict[tuple[str, str], bytes] = {}
        self._refreshing: asyncio.Task[Credentials] | None = None
        static = location.static_credentials()
        if static is not None:
            self.credentials = CredentialCache(StaticProvider(static), static)
        else:
            self.credentials = CredentialCache(location.chain or CredentialChain([]))
        """Where the current credentials come from; refreshed before they expire."""

    def __repr__(self) -> str:
        return f"S3Client({self.location.redacted()!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the session and look up the credentials; a dead endpoint fails within ``timeout``
        instead of hanging.

        Credentials that cannot be found do not fail here: the first request (or presigned URL)
        raises ``S3CredentialsError`` naming every source tried, as an S3Error its callers handle.
        """
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=64,
                ttl_dns_cache=300,
                ssl=client_context(self._ca_bundle) if self._ca_bundle else True,
            ),
            headers={"User-Agent": f"cheeseboard/{__version__}"},  # for S3 access logs
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=min(self.timeout, 10.0), sock_read=self.timeout
            ),
            # Objects go out byte for byte (their sha256 is published): never decompress.
            auto_decompress=False,
            raise_for_status=False,
            # No proxies or .netrc from the environment: .netrc would add an Authorization header.
            trust_env=False,
        )
        with contextlib.suppress(S3CredentialsError):
            await self._credentials()

    async def _credentials(self) -> Credentials:
        """The current credentials, refreshed first when they are about to expire."""
        try:
            return await self.credentials.get(self.session)
        except CredentialsError as exc:
            raise S3CredentialsError(
                "Credentials", self._where(None), None, "NoCredentials", str(exc)
            ) from None

    async def close(self) -> None:
        refreshing, self._refreshing = self._refreshing, None
        if refreshing is not None:
            refreshing.cancel()
            await asyncio.gather(refreshing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> S3Client:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("S3Client.start() was not called")
        return self._session

    # -- names -------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        """The S3 key of ``name``: ``prefix/name``, or ``name`` when the prefix is empty."""
        _check_path(name, "S3 object name")
        return f"{self.location.prefix}/{name}" if self.location.prefix else name

    def _where(self, key: str | None) -> str:
        """``s3://bucket/key`` for messages."""
        return f"s3://{self.location.bucket}/{key or ''}"

    # -- signing -----------------------------------------------------------------------------

    def _path(self, key: str | None) -> str:
        """The canonical URI, which is also the path we send: each segment encoded once."""
        bucket = f"/{_quote(self.location.bucket)}"
        return bucket if key is None else f"{bucket}/{_quote(key, safe='/')}"

    def _signing_key(self, day: str, credentials: Credentials) -> bytes:
        # Keyed by day and access key id: new temporary credentials get a new signing key.
        cached = self._signing_keys.get((day, credentials.access_key))
        if cached is None:
            secret = ("AWS4" + credentials.secret_key).encode()
            cached = _hmac_sha256(secret, day)
            for part in (self.location.region, _SERVICE, "aws4_request"):
                cached = _hmac_sha256(cached, part)
            # One day and key at a time: the cache stays tiny.
            self._signing_keys = {(day, credentials.access_key): cached}
        return cached

    def _current(self) -> Credentials:
        """The credentials last loaded, for signing without awaiting (presigned URLs)."""
        current = self.credentials.current
        if current is None:
            failure = "call start() first" if self._session is None else "none found"
            raise S3CredentialsError(
                "Credentials", self._where(None), None, "NoCredentials", failure
            )
        return current

    def _signature(
        self, stamp: datetime, canonical_request: str, credentials: Credentials | None = None
    ) -> tuple[str, str]:
        """(credential scope, hex signature) of a canonical request at ``stamp``."""
        credentials = credentials or self._current()
        day = stamp.strftime("%Y%m%d")
        scope = f"{day}/{self.location.region}/{_SERVICE}/aws4_request"
        string_to_sign = "\n".join(
            [
                _ALGORITHM,
                stamp.strftime("%Y%m%dT%H%M%SZ"),
                scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        signature = hmac.new(
            self._signing_key(day, credentials), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        return scope, signature

    def _signed_request(
        self,
        method: str,
        key: str | None,
        query: Sequence[tuple[str, str]],
        payload_hash: str,
        credentials: Credentials | None = None,
    ) -> tuple[str, dict[str, str]]:
        """(URL, headers) of a request signed with an Authorization header."""
        credentials = credentials or self._current()
        stamp = datetime.now(UTC)
        headers = {
            "host": self._host,
            "x-amz-content-sha256": payload_hash,
            "x-amz-date": stamp.strftime("%Y%m%dT%H%M%SZ"),
        }
        if credentials.session_token:
            headers["x-amz-security-token"] = credentials.session_token
        names = sorted(headers)
        path, query_string = self._path(key), _canonical_query(query)
        canonical = "\n".join(
            [
                method,
                path,
                query_string,
                "".join(f"{name}:{headers[name].strip()}\n" for name in names),
                ";".join(names),
                payload_hash,
            ]
        )
        scope, signature = self._signature(stamp, canonical, credentials)
        headers["Authorization"] = (
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        url = f"{self.location.endpoint}{path}" + (f"?{query_string}" if query_string else "")
        return url, headers

    def presign_get(self, name: str, expires: int = 300, filename: str | None = None) -> str:
        """A GET URL anyone can use for ``expires`` seconds, to send clients straight to S3.

        With ``filename``, S3 answers with ``Content-Disposition: attachment; filename="..."``
        (objects are stored under their sha256, not their file name).
        """
        if not 1 <= expires <= _MAX_PRESIGN_EXPIRES:
            raise ValueError(f"expires must be between 1 and {_MAX_PRESIGN_EXPIRES} seconds")
        key = self.key(name)
        credentials = self._current()
        if not self.credentials.fresh(credentials):
            self._refresh_soon()
        stamp = datetime.now(UTC)
        day = stamp.strftime("%Y%m%d")
        scope = f"{day}/{self.location.region}/{_SERVICE}/aws4_request"
        query = [
            ("X-Amz-Algorithm", _ALGORITHM),
            ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
            ("X-Amz-Date", stamp.strftime("%Y%m%dT%H%M%SZ")),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if credentials.session_token:
            query.append(("X-Amz-Security-Token", credentials.session_token))
        if filename is not None:
            query.append(("response-content-disposition", _content_disposition(filename)))
        path, query_string = self._path(key), _canonical_query(query)
        canonical = "\n".join(
            ["GET", path, query_string, f"host:{self._host}\n", "host", UNSIGNED_PAYLOAD]
        )
        _, signature = self._signature(stamp, canonical, credentials)
        return f"{self.location.endpoint}{path}?{query_string}&X-Amz-Signature={signature}"

    def _refresh_soon(self) -> None:
        """Start a refresh in the background (presign cannot wait); the next request waits."""
        if self._session is None or self._refreshing is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._credentials())

        def done(finished: asyncio.Task[Credentials]) -> None:
            self._refreshing = None
            if not finished.cancelled():
                finished.exception()  # logged by the cache; retrieved so asyncio stays quiet

        self._refreshing = task
        task.add_done_callback(done)

    # -- transport ---------------------------------------------------------------------------

    async def _send(
        self,
        operation: str,
        method: str,
        key: str | None,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        data: bytes | AsyncIterator[bytes] | None = None,
        payload_hash: str = EMPTY_SHA256,
        body: _FileBody | None = None,
    ) -> aiohttp.ClientResponse:
        """Sign and send one request; the caller reads and releases the response.

        Connection failures and timeouts become ``S3Unavailable`` naming the endpoint; a failure
        of the streamed file body is raised as itself.
        """
        credentials = await self._credentials()
        url, signed = self._signed_request(method, key, query, payload_hash, credentials)
        if headers:
            signed.update(headers)
        try:
            return await self.session.request(
                method,
                yarl.URL(url, encoded=True),  # sent exactly as signed, never re-encoded
                headers=signed,
                data=data,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            if body is not None and body.error is not None:
                raise body.error from None
            raise self._unavailable(operation, key, exc) from exc

    def _unavailable(self, operation: str, key: str | None, exc: BaseException) -> S3Unavailable:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        return S3Unavailable(
            operation,
            self._where(key),
            None,
            "Unavailable",
            f"S3 endpoint {self.location.endpoint} unreachable: {reason}",
        )

    async def _read(
        self,
        response: aiohttp.ClientResponse,
        operation: str,
        key: str | None,
        limit: int,
        *,
        truncate: bool = False,
    ) -> bytes:
        """A whole small body: more than ``limit`` bytes raises (or is cut, with ``truncate``).

        Read errors become S3Unavailable.
        """
        parts: builtins.list[bytes] = []
        size = 0
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    if truncate:
                        break
                    raise S3Error(
                        operation,
                        self._where(key),
                        response.status,
                        "InvalidResponse",
                        f"answer larger than {limit} bytes",
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(operation, key, exc) from exc
        return b"".join(parts)[:limit]

    async def _error(
        self, response: aiohttp.ClientResponse, operation: str, key: str | None
    ) -> S3Error:
        """The S3Error for a failed answer, with the Code and Message of its XML body if any."""
        status = response.status
        code = message = ""
        if response.method != "HEAD":
            with contextlib.suppress(S3Error):
                raw = await self._read(response, operation, key, _MAX_ERROR_BODY, truncate=True)
                try:
                    root = _parse_xml(raw)
                    code, message = _text(root, "Code"), _text(root, "Message")
                except ET.ParseError:
                    message = raw[:200].decode(errors="replace").strip()
        if not code:
            try:
                code = HTTPStatus(status).phrase.replace(" ", "")
            except ValueError:
                code = "Error"
        if status == 404:
            kind: type[S3Error] = S3NotFound
        elif status in (502, 503, 504):
            kind = S3Unavailable
        else:
            kind = S3Error
        return kind(operation, self._where(key), status, code, message)

    async def _call(
        self,
        operation: str,
        method: str,
        key: str | None,
        *,
        ok: Sequence[int] = (200,),
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, bytes]:
        """A request with a small body and answer: (status, body); other statuses raise."""
        payload_hash = hashlib.sha256(data).hexdigest() if data else EMPTY_SHA256
        response = await self._send(
            operation,
            method,
            key,
            query=query,
            headers=headers,
            data=data,
            payload_hash=payload_hash,
        )
        async with response:
            if response.status not in ok:
                raise await self._error(response, operation, key)
            body = b"" if method == "HEAD" else await self._read(response, operation, key, _MAX_XML)
            return response.status, body

    async def _call_xml(
        self,
        operation: str,
        method: str,
        key: str | None,
        *,
        query: Sequence[tuple[str, str]] = (),
        data: bytes | None = None,
    ) -> ET.Element:
        """A request answered by an XML document; a 200 carrying an ``<Error>`` raises too."""
        _, body = await self._call(operation, method, key, query=query, data=data)
        try:
            root = _parse_xml(body)
        except ET.ParseError as exc:
            raise S3Error(
                operation, self._where(key), 200, "InvalidResponse", f"unreadable XML: {exc}"
            ) from None
        if root.tag.rsplit("}", 1)[-1] == "Error":  # CompleteMultipartUpload does this
            raise S3Error(
                operation, self._where(key), 200, _text(root, "Code"), _text(root, "Message")
            )
        return root

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self) -> None:
        """Create the location's bucket; one that already exists is fine (idempotent setup)."""
        data = None
        if self.location.region != "us-east-1":
            configuration = ET.Element(
                "CreateBucketConfiguration", xmlns="http://s3.amazonaws.com/doc/2006-03-01/"
            )
            ET.SubElement(configuration, "LocationConstraint").text = self.location.region
            data = ET.tostring(configuration)
        try:
            await self._call("CreateBucket", "PUT", None, data=data)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    # -- objects -----------------------------------------------------------------------------

    async def _head(self, name: str) -> tuple[str, aiohttp.ClientResponse] | None:
        """(key, answer) of a HEAD of the object, or None if it does not exist."""
        key = self.key(name)
        response = await self._send("HEAD", "HEAD", key)
        async with response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise await self._error(response, "HEAD", key)
            return key, response

    async def head(self, name: str) -> int | None:
        """The object's size, or None if it does not exist."""
        found = await self._head(name)
        if found is None:
            return None
        key, response = found
        if response.content_length is None:
            raise S3Error("HEAD", self._where(key), 200, "InvalidResponse", "no Content-Length")
        return response.content_length

    async def modified(self, name: str) -> float | None:
        """The object's LastModified (epoch seconds), or None if it does not exist."""
        found = await self._head(name)
        return None if found is None else _parse_time(found[1].headers.get("Last-Modified", ""))

    async def put_bytes(self, name: str, data: bytes) -> None:
        """Store a small object from memory (the payload hash is signed, so S3 checks it)."""
        await self._call(
            "PUT",
            "PUT",
            self.key(name),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    async def put_file(self, name: str, path: Path, size: int, sha256_hex: str) -> None:
        """Store a file streamed from disk, which must have ``size`` bytes and ``sha256_hex``.

        Up to ``multipart_threshold`` bytes it is one PUT whose signed payload hash is the file's
        sha256, so S3 itself refuses altered bytes; bigger files go up as a multipart upload (each
        part signed with its own sha256), which is aborted on any failure so no half object or
        orphaned parts stay behind. A file that changes while it is sent raises ``ValueError``.
        """
        sha256_hex = sha256_hex.lower()
        if not _SHA256_HEX.fullmatch(sha256_hex):
            raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
        if size < 0:
            raise ValueError("size must not be negative")
        key = self.key(name)
        with path.open("rb") as handle:
            fd = handle.fileno()
            actual = os.fstat(fd).st_size
            if actual != size:
                raise ValueError(f"{path} has {actual} bytes, not the {size} to upload")
            if size <= self.multipart_threshold:
                await self._put_single(key, fd, path, size, sha256_hex)
            else:
                await self._put_multipart(key, fd, path, size, sha256_hex)

    async def _put_stream(
        self,
        operation: str,
        key: str,
        body: _FileBody,
        payload_hash: str,
        query: Sequence[tuple[str, str]] = (),
    ) -> str | None:
        """PUT a file range as the body; returns the answer's ETag."""
        response = await self._send(
            operation,
            "PUT",
            key,
            query=query,
            headers={
                "Content-Length": str(body.length),
                "Content-Type": "application/octet-stream",
            },
            data=body.chunks(),
            payload_hash=payload_hash,
            body=body,
        )
        async with response:
            if body.error is not None:
                raise body.error
            if response.status != 200:
                raise await self._error(response, operation, key)
            return response.headers.get("ETag")

    async def _put_single(self, key: str, fd: int, path: Path, size: int, sha256_hex: str) -> None:
        body = _FileBody(fd, path, 0, size, sha256_hex)
        await self._put_stream("PUT", key, body, payload_hash=sha256_hex)

    async def _put_multipart(
        self, key: str, fd: int, path: Path, size: int, sha256_hex: str
    ) -> None:
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        root = await self._call_xml("CreateMultipartUpload", "POST", key, query=[("uploads", "")])
        upload_id = _text(root, "UploadId")
        if not upload_id:
            raise S3Error(
                "CreateMultipartUpload", self._where(key), 200, "InvalidResponse", "no UploadId"
            )
        try:
            whole = hashlib.sha256()
            parts: builtins.list[tuple[int, str]] = []
            for number, offset in enumerate(range(0, size, part_size), start=1):
                length = min(part_size, size - offset)
                # First pass (in a thread): this part's sha256, for the signature, and the
                # whole file's, checked before the last part goes out. The second pass streams.
                part_sha = await asyncio.to_thread(_hash_range, fd, path, offset, length, whole)
                if offset + length == size and whole.hexdigest() != sha256_hex:
                    raise ValueError(
                        f"{path} does not have the sha256 it was hashed with "
                        f"({whole.hexdigest()} != {sha256_hex})"
                    )
                body = _FileBody(fd, path, offset, length, part_sha)
                query = [("partNumber", str(number)), ("uploadId", upload_id)]
                etag = await self._put_stream("UploadPart", key, body, part_sha, query)
                if not etag:
                    raise S3Error("UploadPart", self._where(key), 200, "InvalidResponse", "no ETag")
                parts.append((number, etag))
            document = ET.Element("CompleteMultipartUpload")
            for number, etag in parts:
                part = ET.SubElement(document, "Part")
                ET.SubElement(part, "PartNumber").text = str(number)
                ET.SubElement(part, "ETag").text = etag
            await self._call_xml(
                "CompleteMultipartUpload",
                "POST",
                key,
                query=[("uploadId", upload_id)],
                data=ET.tostring(document),
            )
        except BaseException:
            # Parts of an unfinished upload are billed and invisible; never leave them behind.
            with contextlib.suppress(Exception):
                await self._call(
                    "AbortMultipartUpload",
                    "DELETE",
                    key,
                    ok=(200, 204, 404),
                    query=[("uploadId", upload_id)],
                )
            raise

    def get(
        self, name: str, start: int = 0, end: int | None = None
    ) -> AbstractAsyncContextManager[S3Object]:
        """Stream an object, or bytes ``start``..``end`` of it (inclusive; None: to the end).

        Use as ``async with client.get(name) as obj: async for chunk in obj.chunks: ...``;
        a missing object raises ``S3NotFound`` on entering.
        """
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range {start}-{end}")
        return self._get(self.key(name), start, end)

    @contextlib.asynccontextmanager
    async def _get(self, key: str, start: int, end: int | None) -> AsyncIterator[S3Object]:
        ranged = start > 0 or end is not None
        # identity: a server or proxy must not compress, we send these bytes on as they are.
        headers = {"Accept-Encoding": "identity"}
        if ranged:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        response = await self._send("GET", "GET", key, headers=headers)
        async with response:
            if response.status not in (200, 206):
                raise await self._error(response, "GET", key)
            size = response.content_length
            if size is None:
                raise S3Error("GET", self._where(key), response.status, "InvalidResponse", "")
            total = size
            if response.status == 206:
                content_range = response.headers.get("Content-Range", "")
                _, _, whole = content_range.rpartition("/")
                if not whole.isdigit():
                    raise S3Error(
                        "GET",
                        self._where(key),
                        206,
                        "InvalidResponse",
                        f"unusable Content-Range {content_range!r}",
                    )
                total = int(whole)
            elif ranged:
                # A 200 to a ranged request is the whole object; handing it on as the range
                # would serve the wrong bytes.
                raise S3Error(
                    "GET", self._where(key), 200, "InvalidResponse", "the Range was ignored"
                )
            yield S3Object(
                size=size,
                total=total,
                etag=response.headers.get("ETag"),
                chunks=self._chunks(response, key),
            )

    async def _chunks(self, response: aiohttp.ClientResponse, key: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable("GET", key, exc) from exc

    async def get_bytes(self, name: str) -> bytes:
        """A whole (small) object in memory."""
        async with self.get(name) as obj:
            return b"".join([chunk async for chunk in obj.chunks])

    async def delete(self, name: str) -> None:
        """Delete an object; one that does not exist is fine (a missing bucket is not)."""
        key = self.key(name)
        try:
            await self._call("DELETE", "DELETE", key, ok=(200, 204))
        except S3NotFound as exc:
            if exc.code == "NoSuchBucket":
                raise

    # Last in the class: below this point ``list`` would name the method in annotations.
    async def list(
        self, prefix: str = "", page_size: int = 1000
    ) -> AsyncIterator[tuple[str, int, float]]:
        """(name, size, last-modified epoch) of the objects whose name starts with ``prefix``.

        Names are relative to the location's prefix, and objects outside it are never listed
        (``cb/`` does not match ``cbx/``). Pages of ``page_size`` keys are fetched as iterated.
        """
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        base = f"{self.location.prefix}/" if self.location.prefix else ""
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("prefix", base + prefix), ("max-keys", str(page_size))]
            if token:
                query.append(("continuation-token", token))
            root = await self._call_xml("ListObjectsV2", "GET", None, query=query)
            for item in root.iterfind("{*}Contents"):
                key = _text(item, "Key")
                if not key.startswith(base + prefix):
                    continue
                size = _text(item, "Size")
                yield (
                    key[len(base) :],
                    int(size) if size.isdigit() else 0,
                    _parse_time(_text(item, "LastModified")),
                )
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated").lower() != "true" or not token:
                return
