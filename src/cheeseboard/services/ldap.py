"""Sign-in against an LDAP directory (the config file's ``ldap:`` section, ldap_settings.py).

``Directory.authenticate`` finds the user's entry (bind-and-search: as ``bind_dn``, with
``user_search``; or direct bind: ``user_template``), binds as it with the password, and reads the
user's groups (``group_search``, or a ``group_attribute`` such as memberOf on the entry). The user
name is escaped in filters (RFC 4515) and DNs (RFC 4514), so ``*)(uid=*`` names nobody.

ldap3 blocks, so each sign-in runs on a thread with the configured ``timeout`` for connecting and
for every answer (and once more around the whole check). Outcomes: the user's DN and groups; or
``DirectoryRefused`` (wrong password, no such user, a disabled account: all the same to the
caller, a 401 that counts toward the login throttle); or ``DirectoryUnavailable`` (unreachable,
timed out, the service account refused: a 503, not counted). An empty password is refused before
any bind: LDAP takes a bind with an empty password as anonymous, and it would succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

from cheeseboard.ldap_settings import LdapSearch, LdapSettings
from cheeseboard.services.errors import CheeseboardError

log = logging.getLogger(__name__)
MAX_GROUPS = 200
"""Groups taken from the directory per user (the rest are ignored and logged)."""
MAX_USERNAME = 64


class DirectoryRefused(Exception):
    """The directory does not sign this user in with this password (services/directory_signin.py
    answers it as wrong credentials: never an HTTP answer of its own)."""


class DirectoryUnavailable(CheeseboardError):
    """The directory could not be asked (answered 503, for directory users only)."""


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    dn: str
    groups: frozenset[str]


_SCOPES = {"base": "BASE", "one": "LEVEL", "sub": "SUBTREE"}


class Directory:
    """One configured directory; a new connection per sign-in (sign-ins are cached)."""

    def __init__(self, settings: LdapSettings) -> None:
        with warnings.catch_warnings():  # ldap3 2.9 uses pyasn1 names deprecated since 0.6
            warnings.simplefilter("ignore", DeprecationWarning)
            import ldap3  # type: ignore[import-untyped]  # the ldap extra

        self._ldap3: Any = ldap3
        self.settings = settings
        self._seconds = max(1, math.ceil(settings.timeout))  # ldap3 packs them as integers
        self._tls = None
        if settings.url.startswith("ldaps:") or settings.start_tls:
            self._tls = _verifying_tls(ldap3, settings.ca_bundle)

    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        if not password or not username or len(username) > MAX_USERNAME:
            raise DirectoryRefused(f"user {username[:MAX_USERNAME]!r} could not be authenticated")
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._authenticate, username, password),
                self.settings.timeout * 4,
            )
        except TimeoutError as exc:
            raise DirectoryUnavailable("the LDAP directory did not answer in time") from exc

    # --- on a thread -----------------------------------------------------------------------

    def _connection(self, user: str | None, password: str | None) -> Any:
        ldap3 = self._ldap3
        # A Server per connection: ldap3 remembers a failed address, and would not try a
        # directory that is back.
        server = ldap3.Server(
            self.settings.url, connect_timeout=self._seconds, tls=self._tls, get_info=ldap3.NONE
        )
        conn = ldap3.Connection(
            server,
            user=user,
            password=password,
            receive_timeout=self._seconds,
            raise_exceptions=False,
            read_only=True,
        )
        failed = (ldap3.core.exceptions.LDAPException, OSError)
        try:
            conn.open()
        except failed as exc:
            self._close(conn)
            if "ssl" in str(exc).lower():  # ldaps://: the handshake or the certificate
                reason = _tls_reason(exc)
                raise DirectoryUnavailable(f"TLS with the LDAP directory failed: {reason}") from exc
            raise DirectoryUnavailable(f"the LDAP directory is unreachable: {exc}") from exc
        if self.settings.start_tls:  # never goes on in plaintext: no bind without it
            try:
                started = conn.start_tls()
            except failed as exc:
                self._close(conn)  # a failed handshake has closed the socket
                raise DirectoryUnavailable(
                    f"StartTLS with the LDAP directory failed: {_tls_reason(exc)}"
                ) from exc
            if not started:
                self._close(conn)
                raise DirectoryUnavailable("the LDAP directory refused StartTLS")
        return conn

    def _close(self, conn: Any) -> None:
        with contextlib.suppress(self._ldap3.core.exceptions.LDAPException, OSError):
            conn.unbind()

    def _bind(self, conn: Any) -> bool:
        try:
            return bool(conn.bind())
        except (self._ldap3.core.exceptions.LDAPException, OSError) as exc:
            raise DirectoryUnavailable(f"the LDAP directory is unreachable: {exc}") from exc

    def _authenticate(self, username: str, password: str) -> DirectoryUser:
        settings = self.settings
        refused = DirectoryRefused(f"user {username!r} could not be authenticated")
        service = None
        if settings.user_search is not None or settings.bind_dn is not None:
            service = self._connection(settings.bind_dn, settings.bind_password)
            if not self._bind(service):
                service.unbind()
                log.warning("LDAP: bind as %s refused: check ldap.bind_dn", settings.bind_dn)
                raise DirectoryUnavailable("the LDAP directory refused the server's own bind")
        try:
            if settings.user_search is not None:
                assert service is not None
                entries = self._search(service, settings.user_search, username=username)
                if len(entries) != 1:
                    raise refused  # nobody (or a disabled account the filter leaves out)
                dn, attributes = entries[0]
            else:
                assert settings.user_template is not None
                dn = settings.user_template.format(username=self._escape_rdn(username))
                attributes = {}
            user = self._connection(dn, password)
            try:
                if not self._bind(user):
                    raise refused
                if settings.user_filter is not None:
                    own = LdapSearch(dn, settings.user_filter, "base")
                    if not self._search(user, own, username=username):
                        raise refused  # a disabled account
                    attributes = self._search(user, own, username=username)[0][1]
                reader = service if service is not None else user
                groups = self._groups(reader, dn, username, attributes)
            finally:
                user.unbind()
        finally:
            if service is not None:
                service.unbind()
        return DirectoryUser(dn, groups)

    def _escape_rdn(self, value: str) -> str:
        return str(self._ldap3.utils.dn.escape_rdn(value))

    def _search(
        self, conn: Any, search: LdapSearch, **values: str
    ) -> list[tuple[str, dict[str, list[str]]]]:
        escape = self._ldap3.utils.conv.escape_filter_chars
        query = search.filter.format(**{k: escape(v) for k, v in values.items()})
        attributes = [search.attribute_name]
        if self.settings.group_attribute:
            attributes.append(self.settings.group_attribute)
        try:
            conn.search(
                search.base,
                query,
                search_scope=getattr(self._ldap3, _SCOPES[search.scope]),
                attributes=attributes,
                size_limit=MAX_GROUPS + 1,
                time_limit=self._seconds,
            )
        except (self._ldap3.core.exceptions.LDAPException, OSError) as exc:
            raise DirectoryUnavailable(f"the LDAP directory is unreachable: {exc}") from exc
        if conn.result and conn.result.get("result") not in (0, 4, 32):  # ok, size limit, none
            log.warning("LDAP search %s in %s: %s", query, search.base, conn.result)
        found = []
        for entry in conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            attrs = {k: _values(v) for k, v in (entry.get("attributes") or {}).items()}
            found.append((str(entry["dn"]), attrs))
        return found

    def _groups(
        self, conn: Any, dn: str, username: str, attributes: dict[str, list[str]]
    ) -> frozenset[str]:
        settings = self.settings
        names: list[str] = []
        if settings.group_search is not None:
            search = settings.group_search
            for _, attrs in self._search(conn, search, userdn=dn, username=username):
                names.extend(attrs.get(search.attribute_name, []))
        elif settings.group_attribute is not None:
            if not attributes:
                own = LdapSearch(dn, "(objectClass=*)", "base")
                found = self._search(conn, own)
                attributes = found[0][1] if found else {}
            for value in attributes.get(settings.group_attribute, []):
                names.append(_first_rdn_value(value))
        if len(names) > MAX_GROUPS:
            log.warning("LDAP: %s is in %d groups; only %d are used", dn, len(names), MAX_GROUPS)
        return frozenset(name for name in names[:MAX_GROUPS] if name)


def _verifying_tls(ldap3: Any, ca_bundle: str | None) -> Any:
    """TLS for ldaps:// and StartTLS that checks the certificate and the host name in the
    handshake (OpenSSL, as for HTTPS): ldap3's own ``Tls`` checks the name afterwards with
    ``ssl.match_hostname``, deprecated since Python 3.7 and gone in 3.12. ``ca_bundle`` None:
    the system's CAs."""
    context = ssl.create_default_context(cafile=ca_bundle)  # CERT_REQUIRED, check_hostname

    class VerifyingTls(ldap3.Tls):  # type: ignore[misc]  # ldap3 has no type hints
        def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
            connection.socket = context.wrap_socket(
                connection.socket,
                server_hostname=connection.server.host,
                do_handshake_on_connect=do_handshake,
            )

    return VerifyingTls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_bundle)


def _values(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def _first_rdn_value(dn: str) -> str:
    """``cn=devs,ou=groups,…`` -> ``devs`` (a memberOf value names the group's DN)."""
    first = dn.split(",", 1)[0]
    return first.split("=", 1)[1] if "=" in first else first


_SSL_REASON = re.compile(r"\[SSL: [A-Z_]+\] (.+?)(?: \(_ssl\.c:\d+\)|$)")


def _tls_reason(exc: BaseException) -> str:
    """OpenSSL's own words from an ldap3 error, which nests them in tuple reprs
    ("certificate verify failed: Hostname mismatch, certificate is not valid for '127.1'.")."""
    found = _SSL_REASON.search(str(exc))
    return found.group(1).rstrip("'\",)") if found else str(exc)[:300]
