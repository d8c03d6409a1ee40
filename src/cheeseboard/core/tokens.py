"""Login tokens: signed, expiring, and dead once the account's password or identity changes.

A token is ``<payload>.<signature>`` in URL-safe base64: the payload names the user, the expiry
and a fingerprint of what the token is bound to (the caller's ``binding``: the account's random
id and its current password hash, store/accounts.py); the signature is an HMAC-SHA256 with the
server secret (shared by all workers and nodes). Changing the password, or deleting the user and
creating one of the same name (a new id, even with the same hash), changes the fingerprint, so
every earlier token stops working, which devpi's tokens do not do.

A login token's fourth field is null and its fifth a random nonce. A scoped token (``cheeseboard
token -c``) carries its id as the fourth field: the server keeps a row per id with the token's
scope (the indexes it may upload to), so deleting the row revokes it.
A login token revoked early (web sign-out) is known by its ``digest`` (services/auth.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from cheeseboard.core.constant_time import same_secret

DEFAULT_LIFETIME = 36_000  # seconds; devpi-client shows "credentials valid for 10.00 hours"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def binding_fingerprint(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """The outcome of checking a token: the user it is valid for, or why not."""

    user: str | None
    reason: str
    token_id: str | None = None  # set for scoped tokens
    expires: float | None = None  # set for valid tokens: a cached check must end then


class TokenSigner:
    """Issue and check tokens with one server secret."""

    def __init__(self, secret: bytes, lifetime: int = DEFAULT_LIFETIME) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: str, binding: str, now: float | None = None) -> str:
        """A login token for ``user``, valid while the account's ``binding`` is unchanged."""
        expires = int((time.time() if now is None else now) + self.lifetime)
        # No scoped id, and a nonce: two sign-ins in one second must not share a token, or
        # revoking one (signing out) would end the other.
        fields = [user, expires, binding_fingerprint(binding), None, secrets.token_urlsafe(9)]
        payload = _b64(json.dumps(fields).encode())
        return f"{payload}.{self._sign(payload)}"

    def issue_scoped(self, user: str, binding: str, token_id: str, expires: float) -> str:
        """A token whose scope lives server-side under ``token_id``."""
        fields = [user, int(expires), binding_fingerprint(binding), token_id]
        payload = _b64(json.dumps(fields).encode())
        return f"{payload}.{self._sign(payload)}"

    def owner(self, token: str) -> str | None:
        """The user a correctly signed token names (for ``__token__`` as the user name)."""
        payload, dot, signature = token.partition(".")
        if not dot or not same_secret(signature, self._sign(payload)):
            return None
        try:
            owner = json.loads(_unb64(payload))[0]
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        return owner if isinstance(owner, str) else None

    def check(
        self, token: str, user: str, binding: str | None, now: float | None = None
    ) -> TokenCheck:
        """Whether ``token`` is valid for ``user`` whose account is bound to ``binding`` (None:
        no such user)."""
        payload, dot, signature = token.partition(".")
        if not dot or not same_secret(signature, self._sign(payload)):
            return TokenCheck(None, "not a token of this server")
        try:
            owner, expires, fingerprint, *rest = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return TokenCheck(None, "malformed token")
        token_id = str(rest[0]) if rest and rest[0] is not None else None
        if owner != user:
            return TokenCheck(None, "token of another user")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            return TokenCheck(None, "malformed token")
        if (time.time() if now is None else now) >= expires:
            return TokenCheck(None, "token expired")
        if binding is None or fingerprint != binding_fingerprint(binding):
            return TokenCheck(
                None, "password changed or account recreated since the token was issued"
            )
        return TokenCheck(user, "valid token", token_id, float(expires))

    def derive(self, purpose: str, value: str) -> str:
        """A keyed digest of ``value`` for one ``purpose`` (the web UI's CSRF tokens): only the
        server can make it, and it cannot be turned back into ``value``."""
        message = f"{purpose}\0{value}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    @staticmethod
    def digest(token: str) -> str:
        """How a revoked token is recorded: a digest, so the table holds nothing usable."""
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def looks_like_token(secret: str) -> bool:
        payload, dot, signature = secret.partition(".")
        return bool(dot) and len(signature) == 43 and len(payload) >= 16
