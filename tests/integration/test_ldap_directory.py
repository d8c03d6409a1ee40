"""The LDAP directory client (services/ldap.py) against a real OpenLDAP: bind-and-search and
direct bind, wrong passwords, a disabled account, groups (group search and memberOf-style user
attributes), a filter injection, and an unreachable directory."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cheeseboard.ldap_settings import LdapSettingsError, parse_ldap
from cheeseboard.services.ldap import Directory, DirectoryRefused, DirectoryUnavailable
from tests.support.server import free_port
from tests.support.slapd import GROUP_SEARCH, PASSWORDS, SUFFIX, Slapd, search_config, seeded_slapd

SERVE = (sys.executable, "-m", "cheeseboard.server.cli", "serve")


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with seeded_slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


def _sign_in(config: dict[str, object], user: str, password: str) -> object:
    settings = parse_ldap(config)
    assert settings is not None
    return asyncio.run(Directory(settings).authenticate(user, password))


def test_bind_and_search_signs_in_with_groups(slapd: Slapd) -> None:
    user = _sign_in(search_config(slapd.url), "alice", PASSWORDS["alice"])
    assert user.dn == f"uid=alice,ou=people,{SUFFIX}"  # type: ignore[attr-defined]
    assert user.groups == frozenset({"devs"})  # type: ignore[attr-defined]


def test_wrong_password_disabled_and_unknown_users_are_refused(slapd: Slapd) -> None:
    config = search_config(slapd.url)
    for user, password in (
        ("alice", "not-her-password"),
        ("alice", ""),  # an empty password would be an anonymous bind, which succeeds
        ("carol", PASSWORDS["carol"]),  # disabled: the filter leaves her out
        ("nobody", "whatever"),
    ):
        with pytest.raises(DirectoryRefused):
            _sign_in(config, user, password)


def test_direct_bind_with_a_template(slapd: Slapd) -> None:
    config: dict[str, object] = {
        "url": slapd.url,
        "user_template": f"uid={{username}},ou=people,{SUFFIX}",
        "user_filter": "(!(description=disabled))",
        "group_search": GROUP_SEARCH,
    }
    assert _sign_in(config, "bob", PASSWORDS["bob"]).groups == frozenset({"ops"})  # type: ignore[attr-defined]
    with pytest.raises(DirectoryRefused):
        _sign_in(config, "bob", "wrong")
    with pytest.raises(DirectoryRefused):
        _sign_in(config, "carol", PASSWORDS["carol"])
    with pytest.raises(DirectoryRefused):  # escaped into one RDN value: names nobody
        _sign_in(config, "bob,ou=people", PASSWORDS["bob"])


def test_a_filter_injection_names_nobody(slapd: Slapd) -> None:
    """``*)(uid=*`` is escaped (RFC 4515): no entry matches, so no bind is tried as anyone."""
    config = search_config(slapd.url)
    for name in ("*", "*)(uid=*", "alice)(|(uid=*"):
        with pytest.raises(DirectoryRefused):
            _sign_in(config, name, PASSWORDS["alice"])


# ldap3 drops the socket of a refused connection without closing it: collected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_unreachable_directory_is_unavailable_not_refused(tmp_path: Path) -> None:
    config = search_config(f"ldap://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(DirectoryUnavailable):
        _sign_in(config, "alice", PASSWORDS["alice"])
    gc.collect()


def test_a_wrong_bind_dn_password_is_unavailable(slapd: Slapd) -> None:
    config = search_config(slapd.url, bind_password="wrong")
    with pytest.raises(DirectoryUnavailable):
        _sign_in(config, "alice", PASSWORDS["alice"])


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"url": "http://x"}, "ldap.url must be"),
        ({"url": "ldap://x"}, "exactly one of user_template and user_search"),
        ({"url": "ldap://x", "user_template": "uid=x"}, "must contain {username}"),
        ({"url": "ldap://x", "user_template": "uid={username}", "bogus": 1}, "unknown key 'bogus'"),
        (
            {"url": "ldap://x", "user_search": {"base": "dc=x", "filter": "(uid=x)"}},
            "must contain {username}",
        ),
        (
            {"url": "ldap://x", "user_template": "uid={username}", "timeout": "soon"},
            "ldap.timeout must be a number",
        ),
        (
            {"url": "ldaps://x", "start_tls": True, "user_template": "uid={username}"},
            "start_tls is for ldap://",
        ),
    ],
)
def test_bad_sections_name_the_key(section: dict[str, object], words: str) -> None:
    with pytest.raises(LdapSettingsError, match=words.replace("{", r"\{").replace("}", r"\}")):
        parse_ldap(section)


def test_serve_stops_with_one_line_naming_the_bad_key(tmp_path: Path) -> None:
    """A bad ``ldap:`` section stops ``serve`` before it starts, with one line, no traceback."""
    config = tmp_path / "config.yaml"
    config.write_text("ldap:\n  url: ldap://127.0.0.1:1\n  user_template: uid=x\n")
    result = subprocess.run(
        [*SERVE, "--datadir", str(tmp_path), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cheeseboard-server: error: config file {config}: "
        "ldap.user_template must contain {username}"
    )
