"""core/osv.py: OSV documents shaped like the real PyPI ones, malformed ones, and ranges."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cheeseboard.core.osv import (
    MAX_AFFECTED,
    MAX_DOCUMENT_BYTES,
    Affected,
    Interval,
    OsvError,
    parse,
    parse_document,
)

PYSEC: dict[str, Any] = {
    "id": "PYSEC-2021-59",
    "modified": "2021-03-29T12:00:00Z",
    "published": "2021-03-19T16:15:00Z",
    "aliases": ["CVE-2021-28363", "GHSA-5phf-pp7p-vc2r"],
    "details": "The urllib3 library 1.26.x before 1.26.4 ...",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "urllib3", "purl": "pkg:pypi/urllib3"},
            "ranges": [
                {
                    "type": "GIT",
                    "repo": "https://github.com/urllib3/urllib3",
                    "events": [{"introduced": "0"}, {"fixed": "8fd6ae"}],
                },
                {"type": "ECOSYSTEM", "events": [{"introduced": "1.26.0"}, {"fixed": "1.26.4"}]},
            ],
            "versions": ["1.26.0", "1.26.1", "1.26.2", "1.26.3"],
        }
    ],
    "references": [{"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-5phf"}],
}

GHSA: dict[str, Any] = {
    "id": "GHSA-5phf-pp7p-vc2r",
    "modified": "2024-01-01T00:00:00.123Z",
    "summary": "Using HTTPS proxies does not verify the certificate",
    "details": "long text",
    "aliases": ["CVE-2021-28363"],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Foo_Bar"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [
                        {"introduced": "0"},
                        {"fixed": "1.2"},
                        {"introduced": "2.0"},
                        {"last_affected": "2.3"},
                    ],
                },
            ],
        },
        {"package": {"ecosystem": "npm", "name": "foo"}, "versions": ["1.0.0"]},
    ],
}

MAL: dict[str, Any] = {
    "id": "MAL-2024-1234",
    "modified": "2024-05-01T10:00:00Z",
    "summary": "Malicious code in evil-pkg (PyPI)",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Evil.Pkg"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            "versions": ["0.1", "0.2"],
        }
    ],
}


def test_pysec_document() -> None:
    advisory = parse(json.dumps(PYSEC).encode())
    assert advisory.id == "PYSEC-2021-59"
    assert advisory.kind == "vulnerability"
    assert advisory.aliases == ("CVE-2021-28363", "GHSA-5phf-pp7p-vc2r")
    assert advisory.link == "https://osv.dev/vulnerability/PYSEC-2021-59"
    assert advisory.summary is None
    assert advisory.withdrawn is None
    (entry,) = advisory.affected
    assert entry.project == "urllib3"
    assert entry.intervals == (Interval("1.26.0", fixed="1.26.4"),)  # the GIT range is ignored
    assert entry.fixed == ("1.26.4",)
    assert entry.affects("1.26.3") and entry.affects("1.26.0")
    assert not entry.affects("1.26.4") and not entry.affects("1.25.11")
    assert not entry.affects("not a version")


def test_ghsa_ranges_and_other_ecosystems() -> None:
    advisory = parse_document(GHSA)
    assert advisory.modified == "2024-01-01T00:00:00.123Z"
    (entry,) = advisory.affected  # the npm entry is not ours
    assert entry.project == "foo-bar"
    assert [entry.affects(v) for v in ("0.1", "1.1.9", "1.2", "1.9", "2.0", "2.3", "2.3.1")] == [
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert entry.affects("1.2rc1")  # pre-releases compare as PEP 440 says
    assert entry.affects("1.1.0") and entry.affects("v1.1")  # normalized forms
    assert entry.block_specifiers() == ["<1.2", ">=2.0,<=2.3"]


def test_malicious_every_version_is_one_block() -> None:
    advisory = parse_document(MAL)
    assert advisory.kind == "malicious"
    (entry,) = advisory.affected
    assert entry.project == "evil-pkg"
    assert entry.every_version
    assert entry.affects("99.0")
    assert entry.block_specifiers() == [None]


def test_malicious_listed_versions_one_block_each() -> None:
    doc = {
        **MAL,
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "evil"},
                "versions": ["1.0", "1.0.1", "weird-version"],
            }
        ],
    }
    (entry,) = parse_document(doc).affected
    assert entry.block_specifiers() == ["==1.0", "==1.0.1", "===weird-version"]
    assert entry.affects("1.0.0") and entry.affects("weird-version") and not entry.affects("1.1")


def test_malicious_without_versions_blocks_the_project() -> None:
    doc = {**MAL, "affected": [{"package": {"ecosystem": "PyPI", "name": "evil"}}]}
    (entry,) = parse_document(doc).affected
    assert entry.block_specifiers() == [None]


def test_withdrawn() -> None:
    advisory = parse_document({**MAL, "withdrawn": "2024-06-01T00:00:00Z"})
    assert advisory.withdrawn == "2024-06-01T00:00:00Z"


def test_same_project_twice_is_merged() -> None:
    doc = {
        "id": "GHSA-aaaa-bbbb-cccc",
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1"]},
            {"package": {"ecosystem": "PyPI", "name": "X"}, "versions": ["2", "1"]},
        ],
    }
    (entry,) = parse_document(doc).affected
    assert entry.versions == ("1", "2")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"affected": []}', "invalid id"),
        (b'{"id": "../../etc/passwd"}', "invalid id"),
        (b'{"id": "X-1", "affected": {}}', "not a list"),
        (b'{"id": "X-1", "affected": [1]}', "not an object"),
        (
            b'{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "a b"}}]}',
            "invalid PyPI project name",
        ),
        (
            b'{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
            b' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": 1}]}]}]}',
            "no version",
        ),
        (
            b'{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
            b' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]}',
            "one-key object",
        ),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_malformed_documents_are_refused_with_a_reason(document: bytes, reason: str) -> None:
    with pytest.raises(OsvError, match=reason):
        parse(document)


def test_bounds() -> None:
    with pytest.raises(OsvError, match="larger than"):
        parse(b" " * (MAX_DOCUMENT_BYTES + 1))
    many = {
        "id": "X-1",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}}] * (MAX_AFFECTED + 1),
    }
    with pytest.raises(OsvError, match="affected entries"):
        parse_document(many)


def test_odd_fields_are_dropped_not_fatal() -> None:
    doc = {
        "id": "PYSEC-1",
        "summary": 5,
        "aliases": ["ok-1", 3, "bad alias"],
        "modified": "yesterday",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "a"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "not pep 440"}]}
                ],
            }
        ],
    }
    advisory = parse_document(doc)
    assert advisory.summary is None and advisory.modified is None
    assert advisory.aliases == ("ok-1",)
    (entry,) = advisory.affected
    assert not entry.affects("1.0")  # a bound that is no version matches nothing
    assert entry.block_specifiers() == []


def test_affected_json_round_trip() -> None:
    (entry,) = parse_document(GHSA).affected
    assert Affected.from_json(entry.project, entry.to_json()) == entry
