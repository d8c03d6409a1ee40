"""Trusted publishers' claims: cleaned on the way in, matched exactly against ID token claims."""

from __future__ import annotations

from typing import Any

import pytest

from cheeseboard.core.publishers import PublisherClaims, PublisherError, describe

GITHUB = {"repository": "octo/widget", "workflow": "release.yml", "environment": "pypi"}
GITLAB = {"project_path": "group/sub/widget", "workflow": ".gitlab-ci.yml", "ref": "main"}


def _github_token(**changes: Any) -> dict[str, Any]:
    token = {
        "repository": "octo/widget",
        "job_workflow_ref": "octo/widget/.github/workflows/release.yml@refs/tags/v1",
        "ref": "refs/tags/v1",
        "environment": "pypi",
    }
    return {**token, **changes}


def test_kind_follows_the_fields() -> None:
    """``project_path`` makes a GitLab publisher, anything else a GitHub one."""
    assert PublisherClaims.create(GITHUB).kind == "github"
    assert PublisherClaims.create(GITLAB).kind == "gitlab"
    assert describe(PublisherClaims.create(GITLAB)) == (
        "gitlab:group/sub/widget .gitlab-ci.yml ref=main"
    )


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"repository": "octo/widget"}, "needs 'workflow'"),
        ({"workflow": "release.yml"}, "needs 'repository'"),
        ({**GITHUB, "project": "x"}, "unknown claims"),
        ({**GITLAB, "repository_owner_id": "1"}, "unknown claims"),
        ({**GITHUB, "repository": "widget"}, "owner/name"),
        ({**GITHUB, "workflow": "release.yml@refs/heads/main"}, "without '@ref'"),
        ({**GITHUB, "ref": 5}, "a text"),
        ({**GITHUB, "ref": "x" * 300}, "at most 255"),
        ({**GITHUB, "ref": "a\nb"}, "a text"),
    ],
)
def test_bad_claims_are_refused_with_a_reason(raw: dict[str, Any], words: str) -> None:
    """Incomplete or malformed publishers never reach the table."""
    with pytest.raises(PublisherError, match=words):
        PublisherClaims.create(raw)


def test_github_publisher_matches_only_its_workflow() -> None:
    """Every set field must equal the claim; the workflow is the job's own workflow file."""
    claims = PublisherClaims.create(GITHUB)
    assert claims.matches(_github_token())
    assert claims.matches(_github_token(ref="refs/heads/main"))  # ref not pinned: any ref
    assert not claims.matches(_github_token(repository="octo/other"))
    assert not claims.matches(_github_token(environment="staging"))
    assert not claims.matches({k: v for k, v in _github_token().items() if k != "environment"})
    called = "evil/tools/.github/workflows/release.yml@refs/heads/main"
    assert not claims.matches(_github_token(job_workflow_ref=called))
    other = "octo/widget/.github/workflows/other.yml@refs/tags/v1"
    assert not claims.matches(_github_token(job_workflow_ref=other))
    assert not claims.matches(_github_token(job_workflow_ref=None))


def test_gitlab_publisher_matches_its_config_file_on_any_host() -> None:
    """``ci_config_ref_uri`` is ``<host>/<project_path>//<file>@<ref>``."""
    claims = PublisherClaims.create(GITLAB)
    token = {
        "project_path": "group/sub/widget",
        "ci_config_ref_uri": "gitlab.example.com/group/sub/widget//.gitlab-ci.yml@refs/heads/main",
        "ref": "main",
    }
    assert claims.matches(token)
    assert not claims.matches({**token, "ref": "dev"})
    assert not claims.matches({**token, "project_path": "group/widget"})
    wrong_file = "gitlab.example.com/group/sub/widget//other.yml@refs/heads/main"
    assert not claims.matches({**token, "ci_config_ref_uri": wrong_file})
    deeper = "evil.example/x/group/sub/widget//.gitlab-ci.yml@refs/heads/main"
    assert not claims.matches({**token, "ci_config_ref_uri": deeper})
