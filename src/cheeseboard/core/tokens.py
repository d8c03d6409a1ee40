"""Login tokens: signed, expiring, and dead once the user's password changes.

A token is ``<payload>.<signature>`` in URL-safe base64: the payload names the user, the expiry
and a fingerprint of the user's current password hash; the signature is an HMAC-SHA256 with the
server secret (shared by all workers and nodes). Changing the password changes the fingerprint,
so every earlier token stops working, which devpi's tokens do not do.

A scoped token (``cheeseboard token -c``) carries a fourth field, its id: the server keeps a row
per id with the token's scope (the indexes it may upload to), so deleting the row revokes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

DEFAULT_LIFETIME = 36_000  # seconds; devpi-client shows "credentials valid for 10.00 hours"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def password_fingerprint(pwhash: str) -> str:
    return hashlib.sha256(pwhash.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """The outcome of checking a token: the user it is valid for, or why not."""

    user: str | None
    reason: str
    token_id: str | None = None  # set for scoped tokens


class TokenSigner:
    """Issue and check tokens with one server secret."""

    def __init__(self, secret: bytes, lifetime: int = DEFAULT_LIFETIME) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: str, pwhash: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.lifetime)
        payload = _b64(json.dumps([user, expires, password_fingerprint(pwhash)]).encode())
        return f"{payload}.{self._sign(payload)}"

    def issue_scoped(self, user: str, pwhash: str, token_id: str, expires: float) -> str:
        """A token whose scope lives server-side under ``token_id``."""
        fields = [user, int(expires), password_fingerprint(pwhash), token_id]
        payload = _b64(json.dumps(fields).encode())
        return f"{payload}.{self._sign(payload)}"

    def owner(self, token: str) -> str | None:
        """The user a correctly signed token names (for ``__token__`` as the user name)."""
        payload, dot, signature = token.partition(".")
        if not dot or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            owner = json.loads(_unb64(payload))[0]
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        return owner if isinstance(owner, str) else None

    def check(
        self, token: str, user: str, pwhash: str | None, now: float | None = None
    ) -> TokenCheck:
        payload, dot, signature = token.partition(".")
        if not dot or not hmac.compare_digest(signature, self._sign(payload)):
            return TokenCheck(None, "not a token of this server")
        try:
            owner, expires, fingerprint, *rest = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return TokenCheck(None, "malformed token")
        token_id = str(rest[0]) if rest else None
        if owner != user:
            return TokenCheck(None, "token of another user")
        if (time.time() if now is None else now) >= expires:
            return TokenCheck(None, "token expired")
        if pwhash is None or fingerprint != password_fingerprint(pwhash):
            return TokenCheck(None, "password changed since the token was issued")
        return TokenCheck(user, "valid token", token_id)

    def derive(self, purpose: str, value: str) -> str:
        """A keyed digest of ``value`` for one ``purpose`` (the web UI's CSRF tokens): only the
        server can make it, and it cannot be turned back into ``value``."""
        message = f"{purpose}\0{value}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    @staticmethod
    def looks_like_token(secret: str) -> bool:
        payload, dot, signature = secret.partition(".")
        return bool(dot) and len(signature) == 43 and len(payload) >= 16
