"""OIDC sign-in's callback against a provider of our own whose ID tokens the tests craft: a good
token signs in (client secret and PKCE checked by the provider); a forged signature, a wrong
audience, an expired token, a missing or wrong nonce, a replayed or foreign state are refused
with no session; rotated keys are fetched, unknown key ids at most once per interval; each
outcome is in the audit log. The real browser flow is in tests/web/test_oidc.py."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey

from tests.support.api import call
from tests.support.oidc import OwnProvider, own_provider, write_config
from tests.support.server import ROOT_PASSWORD, CheeseboardServer, ServerFactory
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
SESSION = "cheeseboard_session"


@dataclass
class Flow:
    """A started sign-in: the flow cookie and the request's parameters as the provider saw
    them."""

    cookie: str
    state: str
    nonce: str
    challenge: str


def request(
    server: CheeseboardServer, path: str, cookie: str = ""
) -> tuple[int, dict[str, str], list[str], str]:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        headers = {"Accept": "text/html", "Cookie": cookie} if cookie else {"Accept": "text/html"}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        cookies = response.headers.get_all("Set-Cookie") or []
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            cookies,
            response.read().decode(errors="replace"),
        )
    finally:
        connection.close()


def start(server: CheeseboardServer, provider: OwnProvider) -> Flow:
    status, headers, cookies, _ = request(server, "/+web/oidc/login?next=/root")
    assert status == 303
    location = urlsplit(headers["location"])
    assert f"{location.scheme}://{location.netloc}" == provider.issuer
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["code_challenge_method"] == "S256" and query["response_type"] == "code"
    assert "openid" in query["scope"].split()
    jar: SimpleCookie = SimpleCookie()
    for raw in cookies:
        jar.load(raw)
    flow_cookie = f"cheeseboard_oidc={jar['cheeseboard_oidc'].value}"
    assert "httponly" in cookies[0].lower()
    provider.challenge = query["code_challenge"]
    return Flow(flow_cookie, query["state"], query["nonce"], query["code_challenge"])


def finish(
    server: CheeseboardServer, flow: Flow, state: str | None = None
) -> tuple[int, str, bool]:
    """The callback; (status, body, whether a session cookie was set)."""
    status, _, cookies, body = request(
        server, f"/+web/oidc/callback?code=abc&state={state or flow.state}", flow.cookie
    )
    session = any(c.startswith(f"{SESSION}=") and "Max-Age=0" not in c for c in cookies)
    return status, body, session


@pytest.fixture
def provider() -> Iterator[OwnProvider]:
    with own_provider() as own:
        yield own


@pytest.fixture
def server(
    provider: OwnProvider,
    server_factory: ServerFactory,
    html_upstream: UpstreamServer,
    tmp_path: Path,
) -> CheeseboardServer:
    config = write_config(
        tmp_path / "oidc.yaml", provider.issuer, auto_create=True, jwks_refetch_interval=30
    )
    return server_factory.start(html_upstream.simple_url, "--config", str(config))


def test_a_good_token_signs_in_and_creates_the_user(
    server: CheeseboardServer, provider: OwnProvider
) -> None:
    flow = start(server, provider)
    provider.id_token = provider.sign(provider.claims(flow.nonce))
    status, _, session = finish(server, flow)
    assert (status, session) == (303, True)
    assert provider.token_calls == 1
    status, user = call(server.url, "GET", "/dave")
    assert status == 200, user
    # No usable password: the account signs in through the provider only.
    for password in ("!oidc", ""):
        login = {"user": "dave", "password": password}
        assert call(server.url, "POST", "/+login", login)[0] == 401
    status, log = call(server.url, "GET", "/+audit?action=login", auth=ROOT)
    assert status == 200
    [entry] = log["result"]
    assert entry["actor"] == "dave" and entry["detail"] == {
        "via": "oidc",
        "groups": ["devs", "ops"],
        "cli": False,
    }


REFUSALS = {
    "forged signature": ("wrong-key", {}, "signature is not valid"),
    "wrong audience": (None, {"aud": "someone-else"}, "another audience"),
    "several audiences, another azp": (
        None,
        {"aud": ["cheeseboard-test", "x"], "azp": "x"},
        "another azp",
    ),
    "expired": (None, {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    "issued in the future": (None, {"iat": int(time.time()) + 3600}, "in the future"),
    "missing nonce": (None, {"nonce": None}, "nonce is missing"),
    "wrong nonce": (None, {"nonce": "another-sign-in"}, "nonce is missing or is not"),
    "wrong issuer": (None, {"iss": "http://127.0.0.1:1"}, "issuer"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_id_tokens_are_refused_without_a_session(
    server: CheeseboardServer, provider: OwnProvider, case: str
) -> None:
    key, changes, reason = REFUSALS[case]
    flow = start(server, provider)
    claims = provider.claims(flow.nonce, **changes)
    if key == "wrong-key":  # same key id, another key: a forgery
        forger = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        provider.id_token = provider.sign(claims, forger)
    else:
        provider.id_token = provider.sign(claims)
    status, body, session = finish(server, flow)
    assert status == 403 and not session
    assert reason in body.replace("&#39;", "'")
    assert call(server.url, "GET", "/dave")[0] == 404  # nobody was created
    status, log = call(server.url, "GET", "/+audit?action=login-failed", auth=ROOT)
    [entry] = log["result"]
    assert entry["detail"]["via"] == "oidc" and reason in entry["detail"]["reason"]


def test_a_replayed_or_foreign_state_is_refused(
    server: CheeseboardServer, provider: OwnProvider
) -> None:
    flow = start(server, provider)
    provider.id_token = provider.sign(provider.claims(flow.nonce))
    assert finish(server, flow)[0] == 303
    calls = provider.token_calls
    status, body, session = finish(server, flow)  # the same callback again
    assert (status, session) == (403, False) and "replayed" in body
    assert provider.token_calls == calls  # refused before the code is used
    other = start(server, provider)
    status, body, session = finish(server, flow, state=other.state)  # another browser's state
    assert (status, session) == (403, False) and "state" in body
    status, _, _, body = request(server, f"/+web/oidc/callback?code=a&state={flow.state}")
    assert status == 403 and "no sign-in was started" in body  # no flow cookie at all


def test_rotated_keys_are_fetched_and_unknown_ones_at_most_once_per_interval(
    server: CheeseboardServer, provider: OwnProvider
) -> None:
    flow = start(server, provider)
    provider.id_token = provider.sign(provider.claims(flow.nonce))
    assert finish(server, flow)[0] == 303
    assert provider.jwks_fetches == 1
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "key-2"})
    provider.published = [provider.key]  # the provider rotated its key
    flow = start(server, provider)
    provider.id_token = provider.sign(provider.claims(flow.nonce))
    assert finish(server, flow)[0] == 303
    assert provider.jwks_fetches == 2
    # The rotation used this interval's one refetch: unknown key ids now cost no fetch.
    for _ in range(3):
        flow = start(server, provider)
        stranger = RSAKey.generate_key(2048, parameters={"kid": "unknown"})
        provider.id_token = provider.sign(provider.claims(flow.nonce), stranger)
        status, body, session = finish(server, flow)
        assert (status, session) == (403, False) and "key the provider does not publish" in body
    assert provider.jwks_fetches == 2


def test_without_auto_creation_an_unknown_user_is_refused(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    with own_provider() as provider:
        config = write_config(tmp_path / "oidc.yaml", provider.issuer, auto_create=False)
        server = server_factory.start(html_upstream.simple_url, "--config", str(config))
        flow = start(server, provider)
        provider.id_token = provider.sign(provider.claims(flow.nonce))
        status, body, session = finish(server, flow)
        assert (status, session) == (403, False) and "no user &#39;dave&#39;" in body
        assert call(server.url, "GET", "/dave")[0] == 404
        # An account root makes with a password is not the provider's to sign in by default:
        # whoever may choose the claimed name there would take it over.
        assert call(server.url, "PUT", "/dave", {"password": "pw-dave-123"}, auth=ROOT)[0] == 201
        flow = start(server, provider)
        provider.id_token = provider.sign(provider.claims(flow.nonce))
        status, body, session = finish(server, flow)
        assert (status, session) == (403, False) and "oidc.link_local_users" in body


def test_linked_local_accounts_sign_in_but_never_root(
    server_factory: ServerFactory, html_upstream: UpstreamServer, tmp_path: Path
) -> None:
    """With ``link_local_users`` a password account signs in through the provider too; root
    never does, whatever the provider claims."""
    with own_provider() as provider:
        config = write_config(
            tmp_path / "oidc.yaml", provider.issuer, auto_create=False, link_local_users=True
        )
        server = server_factory.start(html_upstream.simple_url, "--config", str(config))
        assert call(server.url, "PUT", "/dave", {"password": "pw-dave-123"}, auth=ROOT)[0] == 201
        flow = start(server, provider)
        provider.id_token = provider.sign(provider.claims(flow.nonce))
        assert finish(server, flow)[:3:2] == (303, True)
        flow = start(server, provider)
        provider.id_token = provider.sign(provider.claims(flow.nonce, preferred_username="root"))
        status, body, session = finish(server, flow)
        assert (status, session) == (403, False) and "signs in with a password" in body


def test_a_bad_oidc_section_stops_the_server_with_one_line(tmp_path: Path) -> None:
    import subprocess

    from tests.support.server import server_command

    config = tmp_path / "bad.yaml"
    config.write_text(
        "oidc:\n  issuer: http://id.example.com\n  client_id: x\n  client_secret: y\n"
    )
    result = subprocess.run(
        server_command("serve", "--datadir", str(tmp_path / "d"), "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "oidc.issuer must be an https:// URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("cli=80&cli_state=abcdefghijklmnopqrst", "cli must be a port number"),
        ("cli=x&cli_state=abcdefghijklmnopqrst", "cli must be a port number"),
        ("cli=4000&cli_state=short", "cli_state must be 16 to 128"),
        ("cli=4000&cli_state=" + "a" * 20 + "%2F", "cli_state must be 16 to 128"),
    ],
)
def test_a_bad_command_line_return_is_refused(
    server: CheeseboardServer, provider: OwnProvider, query: str, reason: str
) -> None:
    status, headers, cookies, body = request(server, f"/+web/oidc/login?{query}")
    assert status == 400 and reason in body
    assert "location" not in headers and not cookies


def test_an_unreachable_provider_gives_a_clear_502(
    server: CheeseboardServer, provider: OwnProvider
) -> None:
    provider.stop()  # discovery has not been fetched yet: nothing cached
    status, headers, cookies, body = request(server, "/+web/oidc/login")
    assert status == 502 and "discovery document is unreachable" in body
    assert "location" not in headers
    assert not [c for c in cookies if c.startswith("cheeseboard_oidc=") and "Max-Age=0" not in c]
    status, log = call(server.url, "GET", "/+audit?action=login", auth=ROOT)
    assert status == 200 and log["result"] == []
