"""Trusted publishing: index owners register CI publishers; CI exchanges its OIDC ID token for a
short-lived upload token scoped to that one index (PyPI's flow and API shapes).

A local issuer (tests/support/ci_issuer.py) serves discovery and JWKS on 127.0.0.1 and signs
GitHub- and GitLab-shaped tokens; a real server trusts it through ``--oidc-issuers``; real twine
uploads with the minted tokens. Every claim mismatch and every malformed or forged token is
refused with PyPI's error shape and mints nothing.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_web_pages import Browser
from tests.support.api import call, twine_upload
from tests.support.certs import make_ca
from tests.support.ci_issuer import (
    REQUEST_TOKEN,
    LocalIssuer,
    github_claims,
    gitlab_claims,
    local_issuer,
)
from tests.support.client_cli import Cli, fails
from tests.support.packages import build_wheel, installer_env
from tests.support.server import (
    ROOT_PASSWORD,
    CheeseboardServer,
    ServerFactory,
    free_port,
    server_command,
)
from tests.support.tls_proxy import tls_proxy
from tests.support.upstream import UpstreamServer

ROOT = ("root", ROOT_PASSWORD)
ALICE = ("alice", "alice-secret-1")
BOB = ("bob", "bob-secret-1")


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as started:
        yield started


@pytest.fixture(scope="module")
def stranger() -> Iterator[LocalIssuer]:
    """An issuer the operator did not configure."""
    with local_issuer() as started:
        yield started


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer
) -> Iterator[CheeseboardServer]:
    factory = ServerFactory(tmp_path_factory.mktemp("trusted-publishing"))
    with UpstreamServer(mode="html") as upstream:
        try:
            started = factory.start(upstream.simple_url, "--oidc-issuers", issuer.url)
            for user, password in (ALICE, BOB):
                assert (
                    call(started.url, "PUT", f"/{user}", {"password": password}, auth=ROOT)[0]
                    == 201
                )
            for index in ("alice/dev", "alice/other", "alice/lab"):
                status, body = call(started.url, "PUT", f"/{index}", {"bases": []}, auth=ROOT)
                assert status == 200, body
            yield started
        finally:
            factory.stop_all()


def _github_publisher(**claims: str) -> dict[str, Any]:
    return {"repository": "octo/widget", "workflow": "release.yml", **claims}


def _add(server: CheeseboardServer, issuer: LocalIssuer, index: str, claims: dict[str, Any]) -> int:
    status, body = call(
        server.url, "POST", f"/{index}/+publishers", {"issuer": issuer.url, "claims": claims}, ALICE
    )
    assert status == 201, body
    return int(body["result"]["id"])


def mint(
    server: CheeseboardServer, token: str, path: str = "/_/oidc/mint-token"
) -> tuple[int, Any]:
    return call(server.url, "POST", path, {"token": token})


def _refused(server: CheeseboardServer, token: str, code: str) -> None:
    status, body = mint(server, token)
    assert status == 422, body
    assert body["message"] == "Token request failed"
    assert [error["code"] for error in body["errors"]] == [code], body
    assert "token" not in body


@pytest.fixture(scope="module")
def publishers(server: CheeseboardServer, issuer: LocalIssuer) -> dict[str, int]:
    """alice/dev trusts octo/widget's release.yml in environment pypi on tags v1.0;
    alice/lab trusts GitLab's group/widget on main."""
    return {
        "github": _add(
            server,
            issuer,
            "alice/dev",
            _github_publisher(ref="refs/tags/v1.0", environment="pypi", repository_owner_id="1234"),
        ),
        "gitlab": _add(
            server,
            issuer,
            "alice/lab",
            {"project_path": "group/widget", "workflow": ".gitlab-ci.yml", "ref": "main"},
        ),
    }


def test_audience_is_served_at_pypis_path_and_ours(server: CheeseboardServer) -> None:
    """uv and gh-action-pypi-publish ask ``/_/oidc/audience``; ``/+oidc/audience`` is ours."""
    assert call(server.url, "GET", "/_/oidc/audience") == (200, {"audience": "cheeseboard"})
    assert call(server.url, "GET", "/+oidc/audience") == (200, {"audience": "cheeseboard"})


def test_github_token_uploads_to_its_index_only(
    server: CheeseboardServer,
    issuer: LocalIssuer,
    publishers: dict[str, int],
    tmp_path: Path,
) -> None:
    """A matching GitHub token mints a 15-minute token that twine uploads with; it cannot
    upload elsewhere nor manage anything."""
    status, body = mint(server, issuer.sign(github_claims()))
    assert status == 200, body
    assert body["success"] is True
    assert 890 <= body["expires"] - time.time() <= 900
    token = body["token"]
    wheel = build_wheel(tmp_path / "dist", "tpwidget", "1.0")
    result = twine_upload(f"{server.url}alice/dev/", "__token__", token, wheel.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert call(server.url, "GET", "/alice/dev/tpwidget/1.0")[0] == 200

    refused = twine_upload(f"{server.url}alice/other/", "__token__", token, wheel.path)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    assert call(server.url, "GET", "/alice/other/tpwidget/1.0")[0] == 404
    scoped = ("__token__", token)
    assert call(server.url, "PATCH", "/alice/dev", ["title=x"], auth=scoped)[0] == 403
    assert call(server.url, "DELETE", "/alice/dev/tpwidget/1.0", auth=scoped)[0] == 403
    assert call(server.url, "POST", "/alice/+tokens", {"indexes": ["alice/dev"]}, scoped)[0] == 403
    assert call(server.url, "GET", "/alice/dev/+publishers", auth=scoped)[0] == 403


def test_gitlab_token_mints_for_its_index_at_our_path(
    server: CheeseboardServer, issuer: LocalIssuer, publishers: dict[str, int], tmp_path: Path
) -> None:
    """A GitLab-shaped token (ES256 this time) matches the GitLab publisher of alice/lab."""
    token = issuer.sign(gitlab_claims(), key=issuer.ec)
    status, body = mint(server, token, "/+oidc/mint-token")
    assert status == 200, body
    wheel = build_wheel(tmp_path / "dist", "tplab", "0.1")
    result = twine_upload(f"{server.url}alice/lab/", "__token__", body["token"], wheel.path)
    assert result.returncode == 0, result.stdout + result.stderr
    refused = twine_upload(f"{server.url}alice/dev/", "__token__", body["token"], wheel.path)
    assert refused.returncode != 0


MISMATCHES = {
    "wrong repository": github_claims(repository="evil/widget"),
    "wrong workflow": github_claims(workflow="other.yml"),
    "wrong ref": github_claims(ref="refs/heads/main"),
    "wrong environment": github_claims(environment="staging"),
    "no environment": github_claims(environment=None),
    "wrong owner id": {**github_claims(), "repository_owner_id": "999"},
    "reusable workflow of another repository": {
        **github_claims(),
        "job_workflow_ref": "evil/tools/.github/workflows/release.yml@refs/tags/v1.0",
    },
    "wrong gitlab project": gitlab_claims(project_path="group/evil"),
    "wrong gitlab config": gitlab_claims(config="other.yml"),
    "wrong gitlab ref": gitlab_claims(ref="dev"),
}


@pytest.mark.parametrize("claims", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_claim_mismatch_is_refused_without_saying_which(
    server: CheeseboardServer,
    issuer: LocalIssuer,
    publishers: dict[str, int],
    claims: dict[str, Any],
) -> None:
    """A valid token whose claims match no publisher gets PyPI's invalid-publisher, which
    names no publisher and no claim."""
    status, body = mint(server, issuer.sign(claims))
    assert status == 422, body
    assert body["errors"] == [
        {"code": "invalid-publisher", "description": "valid token, but no corresponding publisher"}
    ]


def test_forged_and_out_of_time_tokens_are_refused(
    server: CheeseboardServer,
    issuer: LocalIssuer,
    stranger: LocalIssuer,
    publishers: dict[str, int],
) -> None:
    """Wrong audience, expiry, not-before, issue time, signature, algorithm, key, issuer."""
    good = github_claims()
    now = time.time()
    cases = {
        "wrong audience": (issuer.sign({**good, "aud": "pypi"}), "invalid-token"),
        "audience list with another": (
            issuer.sign({**good, "aud": ["cheeseboard", "pypi"]}),
            "invalid-token",
        ),
        "expired": (issuer.sign(good, now=now - 400, lifetime=300), "invalid-token"),
        "not yet valid": (issuer.sign(good, nbf=int(now) + 600), "invalid-token"),
        "issued in the future": (issuer.sign(good, iat=int(now) + 600), "invalid-token"),
        "no jti": (issuer.sign(good, jti=None), "invalid-token"),
        "no exp": (issuer.sign(good, exp=None), "invalid-token"),
        "valid for days": (issuer.sign(good, lifetime=5 * 86400), "invalid-token"),
        "issuer not allowed": (stranger.sign(good), "invalid-payload"),
        "alg none": (issuer.unsigned(good, "none"), "invalid-token"),
        "HS256 keyed with the public key": (
            issuer.unsigned(good, "HS256", issuer.rsa.as_pem(private=False)),
            "invalid-token",
        ),
        "unknown kid": (
            issuer.sign(good, key=stranger.rsa),  # stranger's key names "rsa-1" too
            "invalid-token",
        ),
        "not a JWT": ("not-a-jwt", "invalid-payload"),
        "too long": ("a." + "b" * 20_000 + ".c", "invalid-payload"),
    }
    header, payload, signature = issuer.sign(good).split(".")
    forged = json.loads(_unb64(payload)) | {"repository": "evil/widget"}
    cases["payload changed after signing"] = (
        f"{header}.{_b64json(forged)}.{signature}",
        "invalid-token",
    )
    for name, (token, code) in cases.items():
        status, body = mint(server, token)
        assert status == 422, (name, body)
        assert [e["code"] for e in body["errors"]] == [code], (name, body)


def test_a_token_is_exchanged_once(
    server: CheeseboardServer, issuer: LocalIssuer, publishers: dict[str, int]
) -> None:
    """Replaying an ID token (same iss and jti) is refused."""
    token = issuer.sign(github_claims())
    assert mint(server, token)[0] == 200
    _refused(server, token, "invalid-reuse-token")


def test_rotated_keys_are_fetched_and_random_kids_are_bounded(
    server: CheeseboardServer, issuer: LocalIssuer, publishers: dict[str, int]
) -> None:
    """After a rotation the new key is fetched on first sight; a flood of unknown key ids
    costs at most one JWKS fetch per interval."""
    old_key = issuer.rsa
    issuer.rotate()
    status, body = mint(server, issuer.sign(github_claims()))
    assert status == 200, body
    _refused(server, issuer.sign(github_claims(), key=old_key), "invalid-token")
    before = issuer.jwks_requests
    for _ in range(20):
        kid = secrets.token_hex(4)
        header = {"alg": "RS256", "kid": kid}
        from joserfc import jwt

        forged = jwt.encode(header, {**github_claims(), "iss": issuer.url}, issuer.rsa)
        assert mint(server, forged)[0] == 422
    assert issuer.jwks_requests - before <= 1


def test_publisher_management_needs_the_index_owner(
    server: CheeseboardServer, issuer: LocalIssuer, stranger: LocalIssuer
) -> None:
    """Owner and root list, add and remove; others are refused; bad input gets a reason."""
    body = {"issuer": issuer.url, "claims": _github_publisher()}
    assert call(server.url, "POST", "/alice/other/+publishers", body)[0] == 401
    assert call(server.url, "POST", "/alice/other/+publishers", body, BOB)[0] == 403
    assert call(server.url, "GET", "/alice/other/+publishers", auth=BOB)[0] == 403
    bad = {
        "issuer not configured": {"issuer": stranger.url, "claims": _github_publisher()},
        "no workflow": {"issuer": issuer.url, "claims": {"repository": "octo/widget"}},
        "unknown claim": {"issuer": issuer.url, "claims": {**_github_publisher(), "x": "1"}},
        "workflow with ref": {
            "issuer": issuer.url,
            "claims": _github_publisher(workflow="release.yml@main"),
        },
        "unknown key": {**body, "colour": "red"},
    }
    for name, request in bad.items():
        status, answer = call(server.url, "POST", "/alice/other/+publishers", request, ALICE)
        assert status == 400, (name, answer)
        assert answer["message"], name
    status, created = call(server.url, "POST", "/alice/other/+publishers", body, ROOT)
    assert status == 201, created
    publisher_id = created["result"]["id"]
    status, listed = call(server.url, "GET", "/alice/other/+publishers", auth=ALICE)
    assert status == 200
    assert [p["id"] for p in listed["result"]] == [publisher_id]
    assert listed["result"][0]["audience"] == "cheeseboard"
    assert listed["result"][0]["created_by"] == "root"
    path = f"/alice/other/+publishers/{publisher_id}"
    assert call(server.url, "DELETE", path, auth=BOB)[0] == 403
    assert call(server.url, "DELETE", path, auth=ALICE)[0] == 200
    assert call(server.url, "DELETE", path, auth=ALICE)[0] == 404
    assert call(server.url, "GET", "/alice/other/+publishers", auth=ALICE)[1]["result"] == []


def test_publisher_changes_and_mints_are_audited(
    server: CheeseboardServer, issuer: LocalIssuer, publishers: dict[str, int]
) -> None:
    """publisher-add/-remove name the actor; publisher-mint names the publisher and claims."""
    token = issuer.sign(github_claims())
    assert mint(server, token)[0] == 200
    status, body = call(server.url, "GET", "/+audit?action=publisher-mint", auth=ROOT)
    assert status == 200, body
    entry = body["result"][0]
    assert entry["target"] == "alice/dev"
    assert entry["detail"]["publisher"] == publishers["github"]
    assert entry["detail"]["acts_as"] == "alice"
    assert entry["detail"]["claims"]["repository"] == "octo/widget"
    assert entry["detail"]["claims"]["run_id"] == "42"
    status, body = call(server.url, "GET", "/+audit?action=publisher-add", auth=ROOT)
    assert {e["target"] for e in body["result"]} >= {"alice/dev", "alice/lab"}
    assert body["result"][-1]["actor"] == "alice"


def test_mint_body_is_bounded(server: CheeseboardServer) -> None:
    """A huge or malformed body is refused before any token work."""
    request = urllib.request.Request(
        server.url + "_/oidc/mint-token",
        data=b'{"token": "' + b"a" * 100_000 + b'"}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        assert error.code == 422
        assert json.loads(error.read())["errors"][0]["code"] == "invalid-payload"
    else:
        raise AssertionError("a 100 KB body was accepted")
    status, body = call(server.url, "POST", "/_/oidc/mint-token", ["token"])
    assert status == 422 and body["errors"][0]["code"] == "invalid-payload"


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64json(value: object) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_publisher_command_adds_lists_and_removes(
    server: CheeseboardServer, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """``cheeseboard publisher add|list|remove`` drive the API; a token then mints with it."""
    cli = Cli(tmp_path / "client")
    cli.ok("use", f"{server.url}alice/other")
    cli.ok("login", "alice", "--password", ALICE[1])
    made = json.loads(
        cli.ok(
            "--json",
            "publisher",
            "add",
            "--issuer",
            issuer.url,
            "--repository",
            "octo/cli",
            "--workflow",
            "publish.yml",
            "--environment",
            "release",
        )
    )
    publisher_id = made["result"]["id"]
    listed = json.loads(cli.ok("--json", "publisher", "list"))
    assert [(p["id"], p["claims"]["repository"]) for p in listed] == [(publisher_id, "octo/cli")]
    assert "octo/cli" in cli.ok("publisher", "list")
    token = issuer.sign(
        github_claims(repository="octo/cli", workflow="publish.yml", environment="release")
    )
    status, body = mint(server, token)
    assert status == 200, body
    usage = cli("publisher", "add", "--workflow", "x.yml")
    assert usage.returncode == 2 and "--repository" in usage.stderr, usage.stderr
    fails(cli("publisher", "remove", "999999"), "no publisher")
    cli.ok("publisher", "remove", str(publisher_id))
    assert json.loads(cli.ok("--json", "publisher", "list")) == []


def test_uv_publish_with_trusted_publishing(
    server: CheeseboardServer, issuer: LocalIssuer, publishers: dict[str, int], tmp_path: Path
) -> None:
    """Real ``uv publish --trusted-publishing always`` "in GitHub Actions": uv asks our
    audience, gets an ID token from the runner endpoint (the local issuer), mints at
    ``/_/oidc/mint-token`` and uploads. uv derives those URLs as https, so the server is
    reached through a TLS proxy with a throwaway CA."""
    ca = make_ca(tmp_path / "ca")
    issuer.github_claims = {k: v for k, v in github_claims().items() if k != "aud"}
    wheel = build_wheel(tmp_path / "dist", "tpuv", "2.0")
    with tls_proxy(ca.server_context(), server.port) as https_url:
        env = installer_env(
            {
                "GITHUB_ACTIONS": "true",
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"{issuer.url}/actions-token?api-version=2.0",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
                "SSL_CERT_FILE": str(ca.ca_pem),
                "HOME": str(tmp_path),
            }
        )
        for name in ("UV_PUBLISH_TOKEN", "UV_PUBLISH_USERNAME", "UV_PUBLISH_PASSWORD"):
            env.pop(name, None)
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "uv"),
                "publish",
                "--trusted-publishing",
                "always",
                "--publish-url",
                f"{https_url}alice/dev/",
                str(wheel.path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert call(server.url, "GET", "/alice/dev/tpuv/2.0")[0] == 200
    status, body = call(server.url, "GET", "/+audit?action=publisher-mint", auth=ROOT)
    assert status == 200, body
    assert body["result"][0]["detail"]["claims"]["job_workflow_ref"].startswith("octo/widget/")


def test_export_and_import_keep_publishers(
    server: CheeseboardServer,
    issuer: LocalIssuer,
    publishers: dict[str, int],
    tmp_path: Path,
) -> None:
    """A dump carries the publishers; the imported server mints for them."""
    dump = tmp_path / "dump"
    exported = subprocess.run(
        server_command("export", "--datadir", str(server.datadir), str(dump)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in (dump / "records.jsonl").read_text().splitlines()]
    kept = [r for r in records if r["kind"] == "publisher"]
    assert {r["index"] for r in kept} >= {"alice/dev", "alice/lab"}
    target = tmp_path / "imported"
    imported = subprocess.run(
        server_command("import", "--datadir", str(target), str(dump)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imported.returncode == 0, imported.stderr
    copy = CheeseboardServer(target, free_port(), ["--oidc-issuers", issuer.url])
    copy.start()
    try:
        status, body = call(copy.url, "GET", "/alice/lab/+publishers", auth=ALICE)
        assert status == 200, body
        assert [p["claims"]["project_path"] for p in body["result"]] == ["group/widget"]
        status, body = mint(copy, issuer.sign(gitlab_claims()))
        assert status == 200, body
    finally:
        copy.stop()


def test_index_page_shows_publishers_to_who_manages_the_index(
    server: CheeseboardServer, publishers: dict[str, int]
) -> None:
    """The owner sees the index's publishers in the web UI; others and anonymous do not."""
    owner = Browser(server.url)
    assert owner.login(*ALICE) == 303
    status, _, page = owner.get("/alice/dev")
    assert status == 200
    assert "Trusted publishers" in page and "octo/widget" in page and "release.yml" in page
    other = Browser(server.url)
    assert other.login(*BOB) == 303
    for viewer in (Browser(server.url), other):
        status, _, page = viewer.get("/alice/dev")
        assert status == 200
        assert "Trusted publishers" not in page and "octo/widget" not in page


def test_publishers_of_two_indexes_need_the_index_named(
    server: CheeseboardServer, issuer: LocalIssuer
) -> None:
    """A token matching publishers of two indexes is refused unless the request names one;
    the minted token then uploads only there."""
    claims = _github_publisher(repository="octo/twin")
    ids = {index: _add(server, issuer, index, claims) for index in ("alice/dev", "alice/other")}
    try:
        token = github_claims(repository="octo/twin")
        status, body = mint(server, issuer.sign(token))
        assert status == 422, body
        assert body["errors"][0]["code"] == "ambiguous-publisher"
        assert "alice/dev" in body["errors"][0]["description"]
        request = {"token": issuer.sign(token), "index": "alice/other"}
        status, body = call(server.url, "POST", "/_/oidc/mint-token", request)
        assert status == 200, body
        scoped = ("__token__", body["token"])
        assert call(server.url, "GET", "/alice/+tokens", auth=scoped)[0] == 403
        status, tokens = call(server.url, "GET", "/alice/+tokens", auth=ALICE)
        minted = [t for t in tokens["result"] if t["description"].startswith("trusted publisher")]
        assert minted[-1]["indexes"] == ["alice/other"] and minted[-1]["scope"] == "upload"
    finally:
        for index, publisher_id in ids.items():
            path = f"/{index}/+publishers/{publisher_id}"
            assert call(server.url, "DELETE", path, auth=ALICE)[0] == 200


def test_one_use_across_workers(
    tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer
) -> None:
    """The same ID token sent 8 times at once to a 2-worker server mints exactly once."""
    factory = ServerFactory(tmp_path_factory.mktemp("trusted-publishing-workers"))
    with UpstreamServer(mode="html") as upstream:
        try:
            started = factory.start(
                upstream.simple_url, "--workers", "2", "--oidc-issuers", issuer.url
            )
            assert call(started.url, "PUT", "/alice", {"password": ALICE[1]}, auth=ROOT)[0] == 201
            assert call(started.url, "PUT", "/alice/dev", {"bases": []}, auth=ROOT)[0] == 200
            _add(started, issuer, "alice/dev", _github_publisher())
            token = issuer.sign(github_claims())
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: mint(started, token), range(8)))
            statuses = sorted(status for status, _ in answers)
            assert statuses == [200] + [422] * 7, answers
            codes = {body["errors"][0]["code"] for status, body in answers if status == 422}
            assert codes == {"invalid-reuse-token"}
        finally:
            factory.stop_all()
