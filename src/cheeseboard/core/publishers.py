"""Trusted publishers: which CI runs may publish to an index, and whether an ID token's claims
name one of them (pure; no I/O).

A publisher is GitHub-Actions-shaped (``repository`` and ``workflow``) or GitLab-CI-shaped
(``project_path`` and ``workflow``, the CI config file). Its other fields are optional and,
when set, must equal the token's claim of the same name. The workflow is compared as Warehouse
compares it (warehouse/oidc/models/github.py, gitlab.py): GitHub's ``job_workflow_ref`` is
``<repository>/.github/workflows/<workflow>@<ref>`` and GitLab's ``ci_config_ref_uri`` is
``<host>/<project_path>//<workflow>@<ref>``; the part before ``@`` must be exactly that.
``job_workflow_ref`` names the workflow that runs the job, so a reusable workflow called from
another repository cannot pass for the publisher's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["github", "gitlab"]
MAX_VALUE = 255
"""Longest claim value a publisher may name; GitHub and GitLab values are far shorter."""

_FIELDS: dict[Kind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required fields, optional fields)
    "github": (("repository", "workflow"), ("repository_owner_id", "ref", "environment")),
    "gitlab": (("project_path", "workflow"), ("ref", "environment")),
}


class PublisherError(ValueError):
    """Raised when a publisher's claims are incomplete or malformed (the message says which)."""


@dataclass(frozen=True, slots=True)
class PublisherClaims:
    """What a token must carry to publish: its kind and the exact values of its fields."""

    kind: Kind
    values: Mapping[str, str]

    @classmethod
    def create(cls, raw: Mapping[str, Any]) -> PublisherClaims:
        """Clean loose input (an HTTP body's ``claims``): the kind follows from the fields."""
        kind: Kind = "gitlab" if "project_path" in raw else "github"
        required, optional = _FIELDS[kind]
        unknown = sorted(set(raw) - set(required) - set(optional))
        if unknown:
            raise PublisherError(
                f"unknown claims for a {kind} publisher: {', '.join(unknown)} (known: "
                f"{', '.join(required + optional)})"
            )
        values: dict[str, str] = {}
        for name in required + optional:
            value = raw.get(name)
            if value is None or value == "":
                if name in required:
                    raise PublisherError(f"a {kind} publisher needs {name!r}")
                continue
            if not isinstance(value, str) or len(value) > MAX_VALUE or not value.isprintable():
                raise PublisherError(f"{name!r} is a text of at most {MAX_VALUE} characters")
            values[name] = value.strip()
        if "/" not in values.get("repository", values.get("project_path", "")).strip("/"):
            raise PublisherError("the repository or project path is 'owner/name'")
        if "@" in values["workflow"]:
            raise PublisherError("'workflow' is the workflow file's name, without '@ref'")
        return cls(kind, values)

    @classmethod
    def stored(cls, raw: Mapping[str, Any]) -> PublisherClaims:
        """Rebuild from the ``claims`` column (written by ``create``)."""
        return cls.create(raw)

    def as_json(self) -> dict[str, str]:
        return dict(self.values)

    def matches(self, token: Mapping[str, Any]) -> bool:
        """Whether every field equals the verified token's claim (no partial answer: a caller
        must not learn which field of which publisher was close)."""
        for name, value in self.values.items():
            if name == "workflow":
                if not self._workflow_matches(token):
                    return False
            elif token.get(name) != value:
                return False
        return True

    def _workflow_matches(self, token: Mapping[str, Any]) -> bool:
        workflow = self.values["workflow"]
        if self.kind == "github":
            ref = token.get("job_workflow_ref")
            expected = f"{self.values['repository']}/.github/workflows/{workflow}"
            return isinstance(ref, str) and ref.partition("@")[0] == expected
        uri = token.get("ci_config_ref_uri")
        if not isinstance(uri, str):
            return False
        host, slash, rest = uri.partition("@")[0].partition("/")
        return bool(host and slash) and rest == f"{self.values['project_path']}//{workflow}"


def describe(claims: PublisherClaims) -> str:
    """One line naming a publisher, for listings and the audit log."""
    where = claims.values.get("repository") or claims.values.get("project_path", "")
    extra = "".join(
        f" {name}={claims.values[name]}" for name in ("ref", "environment") if name in claims.values
    )
    return f"{claims.kind}:{where} {claims.values['workflow']}{extra}"
