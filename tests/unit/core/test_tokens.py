"""Login tokens: valid for their user until expiry or a password change, unforgeable."""

from __future__ import annotations

from cheeseboard.core.tokens import TokenSigner

SIGNER = TokenSigner(b"server-secret", lifetime=100)


def test_token_is_valid_for_its_user() -> None:
    """A fresh token checks out for the user and password hash it was issued for."""
    token = SIGNER.issue("alice", "$argon2id$hash-1", now=1000)
    assert TokenSigner.looks_like_token(token)
    assert SIGNER.check(token, "alice", "$argon2id$hash-1", now=1050).user == "alice"


def test_token_expires() -> None:
    """After its lifetime the token is refused with the reason."""
    token = SIGNER.issue("alice", "h", now=1000)
    check = SIGNER.check(token, "alice", "h", now=1100)
    assert check.user is None and check.reason == "token expired"


def test_password_change_kills_token() -> None:
    """A token issued before a password change no longer works."""
    token = SIGNER.issue("alice", "old-hash", now=1000)
    check = SIGNER.check(token, "alice", "new-hash", now=1001)
    assert check.user is None and "password changed" in check.reason


def test_token_is_bound_to_user_and_secret() -> None:
    """Another user, another server secret, or a changed payload are all refused."""
    token = SIGNER.issue("alice", "h", now=1000)
    assert SIGNER.check(token, "bob", "h", now=1001).user is None
    assert TokenSigner(b"other-secret").check(token, "alice", "h", now=1001).user is None
    payload, _, signature = token.partition(".")
    forged = SIGNER.issue("mallory", "h", now=1000).partition(".")[0] + "." + signature
    assert SIGNER.check(forged, "mallory", "h", now=1001).user is None
    assert SIGNER.check(payload + ".", "alice", "h", now=1001).user is None
    assert not TokenSigner.looks_like_token("plain password")


def test_scoped_token_carries_its_id_and_expiry() -> None:
    signer = TokenSigner(b"k" * 32)
    token = signer.issue_scoped("ci", "$argon2id$hash", "abc123", expires=2_000.0)
    assert signer.looks_like_token(token)
    check = signer.check(token, "ci", "$argon2id$hash", now=1_999.0)
    assert (check.user, check.token_id) == ("ci", "abc123")
    assert signer.check(token, "ci", "$argon2id$hash", now=2_000.0).reason == "token expired"
    assert signer.check(token, "ci", "$argon2id$other", now=1.0).user is None
    login = signer.issue("ci", "$argon2id$hash")
    assert signer.check(login, "ci", "$argon2id$hash").token_id is None


def test_owner_needs_a_valid_signature() -> None:
    signer = TokenSigner(b"k" * 32)
    token = signer.issue_scoped("ci", "$argon2id$hash", "abc123", expires=2_000.0)
    assert signer.owner(token) == "ci"
    assert TokenSigner(b"x" * 32).owner(token) is None
    assert signer.owner("garbage") is None
    payload, _, signature = token.partition(".")
    assert signer.owner(payload[:-2] + "." + signature) is None
