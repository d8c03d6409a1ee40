"""The ``oidc:`` section of the server config file: web sign-in through an OpenID Connect provider.

Checked when the server starts, so a typo stops ``serve`` with one line naming the key instead of
every sign-in failing later. The client secret is read here (from ``client_secret`` or
``client_secret_file``) and never shown: it is left out of the dataclass's repr.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_CLAIM_NAME = 64
MAX_SCOPES = 20


class OidcSettingsError(ValueError):
    """A bad ``oidc:`` section; the message names the key."""


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """Where the provider is and how its claims map to users and groups."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    username_claim: str = "preferred_username"
    groups_claim: str | None = None
    auto_create_users: bool = False
    # Whether the provider may sign in accounts made here with a password (never root): off by
    # default, since whoever can choose the claimed name at the provider would take them over.
    link_local_users: bool = False
    allowed_clock_skew: float = 60.0
    display_name: str = "single sign-on"
    jwks_ttl: float = 3600.0
    jwks_refetch_interval: float = 30.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OidcSettings:
        """Rebuild from ``dataclasses.asdict`` (settings passed to worker processes)."""
        return cls(**{**data, "scopes": tuple(data["scopes"])})


_KEYS = {
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_file",
    "scopes",
    "username_claim",
    "groups_claim",
    "auto_create_users",
    "link_local_users",
    "allowed_clock_skew",
    "display_name",
    "jwks_ttl",
    "jwks_refetch_interval",
}


def _text(section: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = section.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise OidcSettingsError(f"oidc.{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _seconds(section: Mapping[str, Any], key: str, default: float, top: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OidcSettingsError(f"oidc.{key} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or not 0 <= value <= top:
        raise OidcSettingsError(f"oidc.{key} must be 0 to {top:g} seconds, got {value!r}")
    return float(value)


def _issuer(section: Mapping[str, Any]) -> str:
    issuer = _text(section, "issuer")
    if issuer is None:
        raise OidcSettingsError("oidc.issuer is required (e.g. https://id.example.com/realms/x)")
    parts = urlsplit(issuer)
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return issuer.rstrip("/")
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise OidcSettingsError(
            f"oidc.issuer must be an https:// URL without query (http only on loopback), "
            f"got {issuer!r}"
        )
    return issuer.rstrip("/")


def _secret(section: Mapping[str, Any]) -> str:
    inline = _text(section, "client_secret")
    path = _text(section, "client_secret_file")
    if (inline is None) == (path is None):
        raise OidcSettingsError("oidc needs exactly one of client_secret or client_secret_file")
    if inline is not None:
        return inline
    assert path is not None
    try:
        secret = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise OidcSettingsError(f"oidc.client_secret_file: cannot read {path}: {reason}") from None
    if not secret:
        raise OidcSettingsError(f"oidc.client_secret_file: {path} is empty")
    return secret


def _scopes(section: Mapping[str, Any]) -> tuple[str, ...]:
    value = section.get("scopes", ["openid", "profile", "email"])
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or len(items) > MAX_SCOPES:
        raise OidcSettingsError(f"oidc.scopes must be a list of 1 to {MAX_SCOPES} scopes")
    scopes = tuple(str(item).strip() for item in items)
    if any(not s or not s.isprintable() or " " in s for s in scopes):
        raise OidcSettingsError(f"oidc.scopes holds an empty or malformed scope: {value!r}")
    return scopes if "openid" in scopes else ("openid", *scopes)


def _claim(section: Mapping[str, Any], key: str, default: str | None) -> str | None:
    claim = _text(section, key, default)
    if claim is not None and (len(claim) > MAX_CLAIM_NAME or not claim.isprintable()):
        raise OidcSettingsError(f"oidc.{key} is not a claim name: {claim!r}")
    return claim


def parse_oidc(section: object) -> OidcSettings | None:
    """The checked section (None: no ``oidc:`` section, OIDC sign-in is off)."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise OidcSettingsError("oidc must be a mapping of key: value")
    unknown = sorted(str(key) for key in section if key not in _KEYS)
    if unknown:
        raise OidcSettingsError(
            f"unknown oidc key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    auto_create = _flag(section, "auto_create_users")
    link_local = _flag(section, "link_local_users")
    return OidcSettings(
        issuer=_issuer(section),
        client_id=_text(section, "client_id") or _missing("client_id"),
        client_secret=_secret(section),
        scopes=_scopes(section),
        username_claim=_claim(section, "username_claim", "preferred_username") or "sub",
        groups_claim=_claim(section, "groups_claim", None),
        auto_create_users=auto_create,
        link_local_users=link_local,
        allowed_clock_skew=_seconds(section, "allowed_clock_skew", 60.0, 600.0),
        display_name=(_text(section, "display_name", "single sign-on") or "")[:60],
        jwks_ttl=_seconds(section, "jwks_ttl", 3600.0, 86400.0),
        jwks_refetch_interval=_seconds(section, "jwks_refetch_interval", 30.0, 3600.0),
    )


def _flag(section: Mapping[str, Any], key: str) -> bool:
    value = section.get(key, False)
    if not isinstance(value, bool):
        raise OidcSettingsError(f"oidc.{key} must be true or false, not {value!r}")
    return value


def _missing(key: str) -> str:
    raise OidcSettingsError(f"oidc.{key} is required")
