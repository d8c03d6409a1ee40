"""``publisher``: add, list and remove the trusted publishers of an index (CI runs that may
publish to it with their OIDC ID token instead of a stored secret)."""

from __future__ import annotations

from cheeseboard.client.commands import client, qualify, result_of
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, unsupported

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"


def _index(config: ClientConfig, index: str | None) -> str:
    return qualify(config, index) if index else config.require_index()


def _unsupported(error: ClientError) -> ClientError:
    """A server without trusted publishing (devpi) answers 404 or 405 on ``+publishers``."""
    return unsupported(error, ("publisher", "no index"), "trusted publishing")


def add(
    config: ClientConfig,
    out: Output,
    index: str | None,
    issuer: str | None,
    claims: dict[str, str],
    audience: str | None,
    description: str,
) -> None:
    """Register a publisher: GitHub (``repository``) or GitLab (``project_path``) claims."""
    target = _index(config, index)
    if issuer is None:
        issuer = GITLAB_ISSUER if "project_path" in claims else GITHUB_ISSUER
    body: dict[str, object] = {"issuer": issuer, "claims": claims, "description": description}
    if audience:
        body["audience"] = audience
    try:
        made = result_of(client(config).json("POST", f"{target}/+publishers", body))
    except ClientError as error:
        raise _unsupported(error) from None
    out.success(f"publisher {made['id']} of {target} added", made)


def list_publishers(config: ClientConfig, out: Output, index: str | None) -> None:
    target = _index(config, index)
    try:
        found = result_of(client(config).json("GET", f"{target}/+publishers")) or []
    except ClientError as error:
        raise _unsupported(error) from None
    if out.json_mode:
        out.emit(found)
        return
    rows = [
        [
            str(p["id"]),
            p["issuer"],
            " ".join(f"{k}={v}" for k, v in sorted(p["claims"].items())),
            p.get("description", ""),
        ]
        for p in found
    ]
    out.table(f"trusted publishers of {target}", ["id", "issuer", "claims", "description"], rows)


def remove(config: ClientConfig, out: Output, index: str | None, publisher_id: str) -> None:
    target = _index(config, index)
    try:
        client(config).json("DELETE", f"{target}/+publishers/{publisher_id}")
    except ClientError as error:
        raise _unsupported(error) from None
    out.success(f"publisher {publisher_id} of {target} removed", {"id": publisher_id})
