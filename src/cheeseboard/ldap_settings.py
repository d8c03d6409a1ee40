"""The ``ldap:`` section of the server config file: sign-in against an LDAP directory.

The keys are devpi-ldap's (``url``, ``user_template`` or ``user_search``, ``group_search``,
``timeout``) plus ``start_tls``, ``ca_bundle``, a bind password from a file, a user attribute
naming groups (``memberOf``) and ``cache_seconds``. Checked when the server starts, so a typo
stops ``serve`` with one line naming the key; the bind password is never shown.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCOPES = ("base", "one", "sub")


class LdapSettingsError(ValueError):
    """A bad ``ldap:`` section; the message names the key."""


@dataclass(frozen=True, slots=True)
class LdapSearch:
    base: str
    filter: str
    scope: str = "sub"
    attribute_name: str = "cn"  # group_search: the attribute naming the group


@dataclass(frozen=True, slots=True)
class LdapSettings:
    """Where the directory is, how a user name becomes an entry, and where groups come from."""

    url: str
    start_tls: bool = False
    ca_bundle: str | None = None
    bind_dn: str | None = None
    bind_password: str | None = field(default=None, repr=False)
    user_template: str | None = None
    user_search: LdapSearch | None = None
    user_filter: str | None = None  # direct bind: the user's own entry must match (enabled)
    group_search: LdapSearch | None = None
    group_attribute: str | None = None  # e.g. memberOf on the user's entry
    timeout: float = 5.0
    cache_seconds: float = 300.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LdapSettings:
        """Rebuild from ``dataclasses.asdict`` (settings passed to worker processes)."""
        values = dict(data)
        for key in ("user_search", "group_search"):
            if values.get(key):
                values[key] = LdapSearch(**values[key])
        return cls(**values)


_KEYS = {
    "url",
    "start_tls",
    "ca_bundle",
    "bind_dn",
    "bind_password",
    "bind_password_file",
    "user_template",
    "user_search",
    "user_filter",
    "group_search",
    "group_attribute",
    "timeout",
    "cache_seconds",
}


def _text(section: Mapping[str, Any], key: str, where: str = "ldap") -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise LdapSettingsError(f"{where}.{key} must be a non-empty string")
    return value.strip()


def _number(section: Mapping[str, Any], key: str, default: float, top: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LdapSettingsError(f"ldap.{key} must be a number of seconds")
    if not 0 <= value <= top:
        raise LdapSettingsError(f"ldap.{key} must be between 0 and {top:g} seconds")
    return float(value)


def _search(section: Mapping[str, Any], key: str, needs: tuple[str, ...]) -> LdapSearch | None:
    raw = section.get(key)
    if raw is None:
        return None
    where = f"ldap.{key}"
    if not isinstance(raw, Mapping):
        raise LdapSettingsError(f"{where} must be a mapping with base, filter and scope")
    unknown = sorted(set(raw) - {"base", "filter", "scope", "attribute_name"})
    if unknown:
        raise LdapSettingsError(f"{where}: unknown key {unknown[0]!r}")
    base, filter_ = _text(raw, "base", where), _text(raw, "filter", where)
    if base is None or filter_ is None:
        raise LdapSettingsError(f"{where} needs base and filter")
    if not (filter_.startswith("(") and filter_.endswith(")")):
        raise LdapSettingsError(f"{where}.filter must be an LDAP filter in parentheses")
    if not any("{" + name + "}" in filter_ for name in needs):
        raise LdapSettingsError(
            f"{where}.filter must contain {' or '.join('{' + n + '}' for n in needs)}"
        )
    scope = raw.get("scope", "sub")
    if scope not in SCOPES:
        raise LdapSettingsError(f"{where}.scope must be one of {', '.join(SCOPES)}")
    attribute = _text(raw, "attribute_name", where) or "cn"
    return LdapSearch(base, filter_, str(scope), attribute)


def parse_ldap(section: object) -> LdapSettings | None:
    """The checked ``ldap:`` section (None: no LDAP); LdapSettingsError names what is wrong."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise LdapSettingsError("ldap must be a mapping of settings")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise LdapSettingsError(f"ldap: unknown key {unknown[0]!r}")
    if importlib.util.find_spec("ldap3") is None:
        raise LdapSettingsError(
            "ldap needs the ldap extra, which is not installed: pip install 'cheeseboard[ldap]'"
        )
    url = _text(section, "url")
    if url is None or urlsplit(url).scheme not in ("ldap", "ldaps") or not urlsplit(url).hostname:
        raise LdapSettingsError("ldap.url must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    start_tls = section.get("start_tls", False)
    if not isinstance(start_tls, bool):
        raise LdapSettingsError("ldap.start_tls must be true or false")
    if start_tls and url.startswith("ldaps:"):
        raise LdapSettingsError("ldap.start_tls is for ldap:// URLs (ldaps:// is TLS already)")
    ca_bundle = _text(section, "ca_bundle")
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise LdapSettingsError(f"ldap.ca_bundle: no such file: {ca_bundle}")
    password = _bind_password(section)
    bind_dn = _text(section, "bind_dn")
    if password is not None and bind_dn is None:
        raise LdapSettingsError("ldap.bind_password needs ldap.bind_dn")
    template = _text(section, "user_template")
    user_search = _search(section, "user_search", ("username",))
    if (template is None) == (user_search is None):
        raise LdapSettingsError("ldap needs exactly one of user_template and user_search")
    if template is not None and "{username}" not in template:
        raise LdapSettingsError("ldap.user_template must contain {username}")
    group_search = _search(section, "group_search", ("userdn", "username"))
    group_attribute = _text(section, "group_attribute")
    if group_search is not None and group_attribute is not None:
        raise LdapSettingsError("ldap needs at most one of group_search and group_attribute")
    user_filter = _text(section, "user_filter")
    if user_filter is not None and template is None:
        raise LdapSettingsError("ldap.user_filter is for user_template (put it in user_search)")
    return LdapSettings(
        url=url,
        start_tls=start_tls,
        ca_bundle=ca_bundle,
        bind_dn=bind_dn,
        bind_password=password,
        user_template=template,
        user_search=user_search,
        user_filter=user_filter,
        group_search=group_search,
        group_attribute=group_attribute,
        timeout=_number(section, "timeout", 5.0, 120.0) or 5.0,
        cache_seconds=_number(section, "cache_seconds", 300.0, 86400.0),
    )


def _bind_password(section: Mapping[str, Any]) -> str | None:
    inline, path = section.get("bind_password"), _text(section, "bind_password_file")
    if inline is not None and path is not None:
        raise LdapSettingsError("ldap needs at most one of bind_password and bind_password_file")
    if path is not None:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise LdapSettingsError(f"ldap.bind_password_file: {exc.strerror}: {path}") from exc
    if inline is not None and not isinstance(inline, str):
        raise LdapSettingsError("ldap.bind_password must be a string")
    return inline
