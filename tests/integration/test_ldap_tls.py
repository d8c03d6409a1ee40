"""LDAP over TLS and memberOf groups (issue 24) against a real OpenLDAP (tests/support/slapd.py)
serving a certificate from a throwaway CA (tests/support/certs.py) on ldaps:// and for StartTLS,
with the memberof overlay loaded.

Sign-in works over ldaps:// and StartTLS when ``ca_bundle`` is the CA that signed the directory's
certificate; without it (the system's CAs), with another CA, or when the directory offers no
StartTLS, the directory is unavailable (a 503 for its users) and no bind is ever sent in
plaintext (slapd's own log shows what reached it). ``group_attribute: memberOf`` takes the
groups from the user's entry.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cheeseboard.ldap_settings import parse_ldap
from cheeseboard.services.ldap import Directory, DirectoryUnavailable, DirectoryUser
from tests.support.api import call
from tests.support.certs import ThrowawayCA, make_ca
from tests.support.server import ROOT_PASSWORD, ServerFactory
from tests.support.slapd import ADMIN_DN, PASSWORDS, SUFFIX, Slapd, search_config, seeded_slapd
from tests.support.upstream import UpstreamServer


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ldap-ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    """A CA that did not sign the directory's certificate."""
    return make_ca(tmp_path_factory.mktemp("other-ca"), name="someone else's CA")


@pytest.fixture(scope="module")
def slapd(ca: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with seeded_slapd(tmp_path_factory.mktemp("slapd-tls"), tls=ca, memberof=True) as server:
        yield server


def _sign_in(config: dict[str, object], user: str = "alice") -> DirectoryUser:
    settings = parse_ldap(config)
    assert settings is not None
    return asyncio.run(Directory(settings).authenticate(user, PASSWORDS[user]))


def _refused(slapd: Slapd, config: dict[str, object]) -> tuple[str, str]:
    """Sign in expecting DirectoryUnavailable: its message, and what slapd logged meanwhile."""
    before = len(slapd.log())
    with pytest.raises(DirectoryUnavailable) as caught:
        _sign_in(config)
    return str(caught.value), slapd.log()[before:]


def test_ldaps_with_the_signing_ca_signs_in(slapd: Slapd, ca: ThrowawayCA) -> None:
    assert slapd.ldaps_url is not None
    before = len(slapd.log())
    user = _sign_in(search_config(slapd.ldaps_url, ca_bundle=str(ca.ca_pem)))
    assert user.dn == f"uid=alice,ou=people,{SUFFIX}"
    assert user.groups == frozenset({"devs"})
    logged = slapd.log()[before:]
    assert "TLS established" in logged and f'BIND dn="{ADMIN_DN}"' in logged, logged


def test_start_tls_with_the_signing_ca_signs_in(slapd: Slapd, ca: ThrowawayCA) -> None:
    """Both connections (the service account's and the user's) start TLS before binding."""
    before = len(slapd.log())
    user = _sign_in(search_config(slapd.url, start_tls=True, ca_bundle=str(ca.ca_pem)), "bob")
    assert user.groups == frozenset({"ops"})
    logged = slapd.log()[before:]
    assert logged.count("STARTTLS") == 2 and logged.count("TLS established") == 2, logged
    binds = [line for line in logged.splitlines() if "mech=SIMPLE" in line]
    assert len(binds) == 2 and all(" ssf=256" in line for line in binds), logged


@pytest.mark.parametrize("which", ["system CAs", "another CA"])
def test_ldaps_with_a_ca_that_did_not_sign_is_unavailable(
    slapd: Slapd, other_ca: ThrowawayCA, which: str
) -> None:
    assert slapd.ldaps_url is not None
    bundle = {"ca_bundle": str(other_ca.ca_pem)} if which == "another CA" else {}
    message, logged = _refused(slapd, search_config(slapd.ldaps_url, **bundle))
    assert "certificate" in message.lower(), message
    assert "LDAP" in message, message
    assert " BIND " not in logged, logged


def test_a_certificate_for_another_host_name_is_refused(slapd: Slapd, ca: ThrowawayCA) -> None:
    """``127.1`` reaches 127.0.0.1, but the certificate names 127.0.0.1 and localhost only."""
    assert slapd.ldaps_url is not None
    url = slapd.ldaps_url.replace("127.0.0.1", "127.1")
    message, logged = _refused(slapd, search_config(url, ca_bundle=str(ca.ca_pem)))
    assert "hostname mismatch" in message.lower(), message
    # OpenSSL's words, not ldap3's nested tuple reprs or the C source line.
    assert "_ssl.c" not in message and "('" not in message and "wrapping" not in message, message
    assert " BIND " not in logged, logged


@pytest.mark.parametrize("which", ["system CAs", "another CA"])
def test_start_tls_with_a_ca_that_did_not_sign_never_binds_in_plaintext(
    slapd: Slapd, other_ca: ThrowawayCA, which: str
) -> None:
    bundle = {"ca_bundle": str(other_ca.ca_pem)} if which == "another CA" else {}
    message, logged = _refused(slapd, search_config(slapd.url, start_tls=True, **bundle))
    assert "certificate" in message.lower(), message
    assert "STARTTLS" in logged, logged
    assert " BIND " not in logged and "SRCH" not in logged, logged


def test_start_tls_to_a_directory_without_tls_never_binds_in_plaintext(
    tmp_path: Path, ca: ThrowawayCA
) -> None:
    """A directory offering no TLS: StartTLS is refused, and the sign-in stops there."""
    with seeded_slapd(tmp_path / "plain") as plain:
        before = len(plain.log())
        config = search_config(plain.url, start_tls=True, ca_bundle=str(ca.ca_pem))
        with pytest.raises(DirectoryUnavailable) as caught:
            _sign_in(config)
        logged = plain.log()[before:]
    assert "StartTLS" in str(caught.value), caught.value
    assert "1.3.6.1.4.1.1466.20037" in logged and " BIND " not in logged, logged


def test_member_of_gives_the_groups(slapd: Slapd, ca: ThrowawayCA) -> None:
    """``group_attribute: memberOf``, with bind-and-search and with direct bind (the user reads
    its own entry): the group names are the first RDN values of the memberOf DNs."""
    tls = {"start_tls": True, "ca_bundle": str(ca.ca_pem)}
    search = search_config(slapd.url, group_search=None, group_attribute="memberOf", **tls)
    assert _sign_in(search).groups == frozenset({"devs"})
    direct = {
        "url": slapd.url,
        "user_template": f"uid={{username}},ou=people,{SUFFIX}",
        "group_attribute": "memberOf",
        **tls,
    }
    assert _sign_in(direct, "bob").groups == frozenset({"ops"})
    slapd.modify(
        f"dn: cn=devs,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n"
        f"member: uid=bob,ou=people,{SUFFIX}\n"
    )
    try:
        assert _sign_in(direct, "bob").groups == frozenset({"devs", "ops"})
    finally:
        slapd.modify(
            f"dn: cn=devs,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\n"
            f"member: uid=bob,ou=people,{SUFFIX}\n"
        )


def _login(url: str, user: str, password: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url + "+login",
        data=json.dumps({"user": user, "password": password}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def test_the_server_over_ldaps_and_with_an_untrusted_certificate(
    slapd: Slapd, ca: ThrowawayCA, other_ca: ThrowawayCA, tmp_path: Path
) -> None:
    """One real server trusting the CA (ldaps://, memberOf groups: alice reads a :group:devs
    index) and one trusting another CA: there alice gets 503 naming the certificate, while
    local root signs in as before."""
    assert slapd.ldaps_url is not None
    good = {"ca_bundle": str(ca.ca_pem), "group_search": None, "group_attribute": "memberOf"}
    configs = {
        "good": search_config(slapd.ldaps_url, **good),
        "bad": search_config(slapd.ldaps_url, ca_bundle=str(other_ca.ca_pem)),
    }
    factory = ServerFactory(tmp_path)
    root = ("root", ROOT_PASSWORD)
    with UpstreamServer(mode="html") as upstream:
        try:
            servers = {}
            for name, ldap in configs.items():
                config = tmp_path / f"{name}.yaml"
                config.write_text(json.dumps({"ldap": ldap}))  # JSON is YAML
                servers[name] = factory.start(upstream.simple_url, "--config", str(config))
            good_url, bad_url = servers["good"].url, servers["bad"].url
            body = {"bases": "", "acl_upload": [":group:devs"], "acl_read": [":group:devs"]}
            assert call(good_url, "PUT", "/root/devsonly", body, auth=root)[0] == 200
            assert _login(good_url, "alice", PASSWORDS["alice"])[0] == 200
            alice = ("alice", PASSWORDS["alice"])
            assert call(good_url, "GET", "/root/devsonly", auth=alice)[0] == 200
            assert call(good_url, "GET", "/root/devsonly", auth=("bob", PASSWORDS["bob"]))[0] == 404

            status, answer = _login(bad_url, "alice", PASSWORDS["alice"])
            assert status == 503, answer
            assert "certificate" in str(answer.get("message", "")).lower(), answer
            assert _login(bad_url, *root)[0] == 200
        finally:
            factory.stop_all()
