"""Talking to an OpenID Connect provider: discovery, its signing keys, the token endpoint, and
checking an ``id_token``.

Sign-ins are rare next to package requests, so each call opens its own HTTP session (through the
server's CA trust, tls.py) and every answer is read within a size bound. Discovery and the key
set are cached for ``jwks_ttl``; a token signed with a key id the cache lacks (the provider
rotated its keys) refetches the key set, at most once per ``jwks_refetch_interval``, so forged
key ids cannot make us hammer the provider.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from cheeseboard.core import jws
from cheeseboard.core.constant_time import same_secret
from cheeseboard.oidc_settings import OidcSettings
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.tls import client_context

if TYPE_CHECKING:  # aiohttp is imported on first use: the serving parent never needs it
    import aiohttp

MAX_ANSWER_BYTES = 1024 * 1024
"""Largest discovery document, key set or token answer read from the provider."""
MAX_ID_TOKEN_BYTES = 64 * 1024
TIMEOUT = 10.0


class OidcRefused(CheeseboardError):
    """A sign-in refused; the message is the reason, shown to the person and audited."""


class ProviderUnavailable(OidcRefused):
    """The provider could not be reached or answered nonsense."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The parts of the provider's discovery document we use."""

    issuer: str
    authorization: str
    token: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Request:
    """One authorization request's secrets: kept in the browser's signed flow cookie."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Request:
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        """PKCE S256: base64url(sha256(verifier)) without padding."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def _read_json(response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise ProviderUnavailable(f"the provider's {what} is larger than {MAX_ANSWER_BYTES}")
    try:
        data = json.loads(body)
    except ValueError:
        raise ProviderUnavailable(f"the provider's {what} is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderUnavailable(f"the provider's {what} is not a JSON object")
    return data


class OidcClient:
    """One configured provider, shared by the requests of a process."""

    def __init__(self, settings: OidcSettings, ca_bundle: str | None) -> None:
        self.settings = settings
        self._ca_bundle = ca_bundle
        self._endpoints: tuple[float, Endpoints] | None = None
        self._keys: tuple[float, list[jws.PublicKey]] | None = None
        self._last_refetch = 0.0
        self._lock = asyncio.Lock()

    def _session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(ssl=client_context(self._ca_bundle))
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=True)

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        import aiohttp

        try:
            async with self._session() as session, session.get(url) as response:
                if response.status != 200:
                    raise ProviderUnavailable(f"the provider's {what} answered {response.status}")
                return await _read_json(response, what)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"the provider's {what} is unreachable: {exc}") from None

    async def endpoints(self) -> Endpoints:
        """The discovery document's endpoints, cached; its issuer must be ours exactly."""
        cached = self._endpoints
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        issuer = self.settings.issuer
        data = await self._get(f"{issuer}/.well-known/openid-configuration", "discovery document")
        if str(data.get("issuer", "")).rstrip("/") != issuer:
            raise ProviderUnavailable(
                f"the discovery document names issuer {data.get('issuer')!r}, not {issuer!r}"
            )
        try:
            endpoints = Endpoints(
                issuer=str(data["issuer"]),
                authorization=str(data["authorization_endpoint"]),
                token=str(data["token_endpoint"]),
                jwks_uri=str(data["jwks_uri"]),
            )
        except KeyError as exc:
            raise ProviderUnavailable(f"the discovery document lacks {exc.args[0]}") from None
        self._endpoints = (time.monotonic() + self.settings.jwks_ttl, endpoints)
        return endpoints

    async def _key_set(self, refetch: bool) -> list[jws.PublicKey] | None:
        """The cached key set; ``refetch``: fetch it again unless that was done lately (None
        then: nothing new to try)."""
        async with self._lock:
            now = time.monotonic()
            cached = self._keys
            if cached is not None and now < cached[0] and not refetch:
                return cached[1]
            if refetch:
                if now - self._last_refetch < self.settings.jwks_refetch_interval:
                    return None
                self._last_refetch = now
            data = await self._get((await self.endpoints()).jwks_uri, "key set")
            try:
                keys = jws.parse_jwks(data)
            except jws.JwsError as exc:
                raise ProviderUnavailable(f"the provider's key set is unusable: {exc}") from None
            if not keys:
                raise ProviderUnavailable("the provider's key set has no RS256 or ES256 key")
            self._keys = (now + self.settings.jwks_ttl, keys)
            return keys

    async def authorization_url(self, request: Request, redirect_uri: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": request.state,
                "nonce": request.nonce,
                "code_challenge": request.challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = (await self.endpoints()).authorization
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        """The ``id_token`` the token endpoint gives for ``code`` (client_secret_basic)."""
        import aiohttp

        endpoint = (await self.endpoints()).token
        auth = aiohttp.BasicAuth(self.settings.client_id, self.settings.client_secret)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        try:
            async with (
                self._session() as session,
                session.post(endpoint, data=form, auth=auth) as response,
            ):
                data = await _read_json(response, "token answer")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(
                f"the provider's token endpoint is unreachable: {exc}"
            ) from None
        if status != 200:
            error = str(data.get("error", "error"))[:100]
            raise OidcRefused(f"the provider refused the code ({status} {error})")
        token = data.get("id_token")
        if not isinstance(token, str) or not token:
            raise OidcRefused("the provider's token answer has no id_token")
        return token

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature, issuer, audience, times and nonce
        hold; OidcRefused with the reason otherwise."""
        if len(id_token) > MAX_ID_TOKEN_BYTES:
            raise OidcRefused("the id_token is too large")
        keys = await self._key_set(refetch=False)
        assert keys is not None
        try:
            try:
                token = jws.verify(id_token, keys)
            except jws.UnknownKeyId:
                fresh = await self._key_set(refetch=True)  # the provider may have rotated
                if fresh is None:
                    raise
                token = jws.verify(id_token, fresh)
        except jws.UnknownKeyId:
            reason = "the id_token is signed with a key the provider does not publish"
            raise OidcRefused(reason) from None
        except jws.JwsError as exc:
            raise OidcRefused(f"the id_token's signature is not valid ({exc})") from None
        claims = dict(token.claims)
        self._check_claims(claims, nonce)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        settings = self.settings
        if str(claims.get("iss", "")).rstrip("/") != settings.issuer:
            raise OidcRefused(f"the id_token's issuer {claims.get('iss')!r} is not ours")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.client_id not in audiences:
            raise OidcRefused(f"the id_token is for another audience ({audience!r})")
        if len(audiences) > 1 and claims.get("azp") != settings.client_id:
            raise OidcRefused("the id_token has several audiences and another azp")
        now, skew = time.time(), settings.allowed_clock_skew
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int | float) or not isinstance(issued, int | float):
            raise OidcRefused("the id_token lacks exp or iat")
        if now > expires + skew:
            raise OidcRefused("the id_token has expired")
        if issued > now + skew:
            raise OidcRefused("the id_token is issued in the future (check the clocks)")
        if not isinstance(claims.get("nonce"), str) or not same_secret(claims["nonce"], nonce):
            raise OidcRefused("the id_token's nonce is missing or is not this sign-in's")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise OidcRefused("the id_token has no subject (sub)")
