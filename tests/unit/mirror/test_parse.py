"""Parsing upstream simple pages (HTML and JSON) and the PyPI JSON API, and enriching pages."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheeseboard.mirror.parse import (
    FileFacts,
    PageFormatError,
    UpstreamLink,
    UpstreamPage,
    enrich,
    needs_enrichment,
    parse_html_page,
    parse_json_page,
    parse_pypi_json,
    parse_simple_page,
)

BASE = "https://up.example/simple/foo/"
SHA = "ab" * 32
OTHER_SHA = "ef" * 32
CORE = "cd" * 32
TIME = "2024-01-02T03:04:05.123456Z"
PROPERTY = settings(database=None, max_examples=200, deadline=None)


def html(*anchors: str, head: str = "") -> bytes:
    """A PEP 503 page around the given <a> tags."""
    links = "\n".join(f"{a}<br/>" for a in anchors)
    return f"<!DOCTYPE html><html><head>{head}</head><body>{links}</body></html>".encode()


def only_link(body: bytes, base: str = BASE) -> UpstreamLink:
    """Parse an HTML page that must hold exactly one link."""
    (found,) = parse_html_page(body, base).links
    return found


def json_page(*files: dict[str, Any], **extra: Any) -> bytes:
    """A PEP 691 project page holding ``files``."""
    return json.dumps(
        {"meta": {"api-version": "1.1"}, "name": "foo", "files": files, **extra}
    ).encode()


def json_file(filename: str = "foo-1.0.tar.gz", **fields: Any) -> dict[str, Any]:
    """One PEP 691 file entry with a relative url and a sha256."""
    entry: dict[str, Any] = {"filename": filename, "url": f"../../files/{filename}"}
    entry["hashes"] = {"sha256": SHA}
    entry.update(fields)
    return entry


def only_json_link(*files: dict[str, Any]) -> UpstreamLink:
    """Parse a JSON page that must keep exactly one link."""
    (found,) = parse_json_page(json_page(*files), BASE).links
    return found


# -- HTML ---------------------------------------------------------------------------------


def test_html_relative_href_with_sha256() -> None:
    """Relative hrefs resolve against the page URL; the sha256 fragment becomes the hash."""
    found = only_link(html(f'<a href="../../files/foo-1.0.tar.gz#sha256={SHA.upper()}">x</a>'))
    assert found == UpstreamLink("foo-1.0.tar.gz", "https://up.example/files/foo-1.0.tar.gz", SHA)


def test_html_absolute_href() -> None:
    """Absolute hrefs (another host) are kept as they are, minus the fragment."""
    found = only_link(html(f'<a href="https://cdn.example/p/foo-1.0.tar.gz#sha256={SHA}">f</a>'))
    assert found.url == "https://cdn.example/p/foo-1.0.tar.gz"
    assert found.sha256 == SHA


def test_html_base_tag() -> None:
    """<base href> changes what relative links resolve against; only the first one counts."""
    body = html(
        '<a href="foo-1.0.tar.gz">x</a>',
        head='<base href="https://mirror.example/pkgs/"><base href="https://evil.example/">',
    )
    assert only_link(body).url == "https://mirror.example/pkgs/foo-1.0.tar.gz"


def test_html_relative_base_tag() -> None:
    """A relative <base href> is itself resolved against the page URL."""
    body = html('<a href="foo-1.0.tar.gz">x</a>', head='<base href="/files/">')
    assert only_link(body).url == "https://up.example/files/foo-1.0.tar.gz"


@pytest.mark.parametrize(
    "fragment",
    ["md5=" + "a" * 32, "sha512=" + "a" * 128, "sha256=" + "a" * 63, "sha256=" + "g" * 64, "", "x"],
)
def test_html_other_hashes_ignored(fragment: str) -> None:
    """Only a well-formed sha256 fragment is taken; other algorithms leave sha256 unknown."""
    assert only_link(html(f'<a href="foo-1.0.tar.gz#{fragment}">x</a>')).sha256 is None


def test_html_yanked_with_and_without_value() -> None:
    """data-yanked with a reason keeps it; bare or empty data-yanked is an empty reason."""
    page = parse_html_page(
        html(
            '<a href="a-1.tar.gz" data-yanked="bad &amp; broken">x</a>',
            '<a href="b-1.tar.gz" data-yanked>x</a>',
            '<a href="c-1.tar.gz" data-yanked="">x</a>',
            '<a href="d-1.tar.gz">x</a>',
        ),
        BASE,
    )
    assert [link.yanked for link in page.links] == ["bad & broken", "", "", None]


def test_html_requires_python_is_entity_decoded() -> None:
    """data-requires-python entities (&lt; &gt; &#60;) are decoded."""
    found = only_link(html('<a href="foo-1.tar.gz" data-requires-python="&gt;=3.8,&#60;4">x</a>'))
    assert found.requires_python == ">=3.8,<4"
    empty = only_link(html('<a href="foo-1.tar.gz" data-requires-python="">x</a>'))
    assert empty.requires_python is None


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (f'data-core-metadata="sha256={CORE}"', CORE),
        (f'data-core-metadata="SHA256={CORE.upper()}"', CORE),
        (f'data-dist-info-metadata="sha256={CORE}"', CORE),
        (f'data-core-metadata="sha256={CORE}" data-dist-info-metadata="sha256={SHA}"', CORE),
        ('data-core-metadata="true"', None),
        ("data-core-metadata", None),
        ('data-core-metadata="md5=0123"', None),
        ('data-core-metadata="sha256=short"', None),
    ],
)
def test_html_core_metadata(attrs: str, expected: str | None) -> None:
    """A sha256 core-metadata hash is kept; 'true' (no hash to check against) is not."""
    found = only_link(html(f'<a href="foo-1.0-py3-none-any.whl" {attrs}>x</a>'))
    assert found.core_metadata_sha256 == expected


def test_html_size_and_upload_time() -> None:
    """data-size (ASCII digits) and a well-formed data-upload-time are read; junk is dropped."""
    page = parse_html_page(
        html(
            f'<a href="a-1.tar.gz" data-size="123" data-upload-time="{TIME}">x</a>',
            '<a href="b-1.tar.gz" data-size="-1" data-upload-time="2024-01-02 03:04:05">x</a>',
            '<a href="c-1.tar.gz" data-size="\u00b2" '
            'data-upload-time="2024-01-02T03:04:05Z\n">x</a>',
            '<a href="d-1.tar.gz" data-size="\u0661\u0662">x</a>',
        ),
        BASE,
    )
    assert [(link.size, link.upload_time) for link in page.links] == [
        (123, TIME),
        (None, None),
        (None, None),
        (None, None),
    ]


@pytest.mark.parametrize(
    "href",
    [
        "../",
        "foo/",
        "foo-1.0.txt",
        "foo-1.0.tar.gz.asc",
        "foo-1.0-py3-none-any.whl.metadata",
        "https://up.example/",
        "",
    ],
)
def test_html_non_archive_links_skipped(href: str) -> None:
    """Links that are not distribution archives are left out."""
    assert parse_html_page(html(f'<a href="{href}">x</a>', "<a>no href</a>"), BASE).links == ()


@pytest.mark.parametrize(
    "href",
    [
        "..%2Fescape-1.0.tar.gz",
        "a%2Fb-1.0.tar.gz",
        "a%5Cb-1.0.tar.gz",
        "a%00b-1.0.tar.gz",
        "a%20b-1.0.tar.gz",
        "%2E%2E-1.0.tar.gz",
        "file:///etc/foo-1.0.tar.gz",
        "ftp://up.example/foo-1.0.tar.gz",
        "javascript:foo-1.0.tar.gz",
        "data:,foo-1.0.tar.gz",
    ],
)
def test_html_unsafe_links_skipped(href: str) -> None:
    """Encoded separators, control characters and non-http(s) URLs never become links."""
    assert parse_html_page(html(f'<a href="{href}">x</a>'), BASE).links == ()


def test_html_percent_encoded_filename_decoded() -> None:
    """%2B in the URL is '+' in the file name; the URL itself stays encoded."""
    found = only_link(html('<a href="foo-1.0%2Blocal-py3-none-any.whl">x</a>'))
    assert found.filename == "foo-1.0+local-py3-none-any.whl"
    assert found.url.endswith("/foo-1.0%2Blocal-py3-none-any.whl")


def test_html_project_status_meta() -> None:
    """pypi:project-status meta tags give the PEP 792 status and reason."""
    page = parse_html_page(
        html(
            head='<meta name="pypi:project-status" content="quarantined">'
            '<meta name="pypi:project-status-reason" content="malware &lt;x&gt;">'
        ),
        BASE,
    )
    assert (page.status, page.status_reason, page.is_json) == ("quarantined", "malware <x>", False)
    plain = parse_html_page(html(), BASE)
    assert (plain.status, plain.status_reason) == (None, None)


def test_html_tolerates_bad_markup_and_bytes() -> None:
    """Unclosed tags, upper-case tags and invalid UTF-8 do not stop parsing."""
    body = b'<HTML><BODY><A HREF="foo-1.0.tar.gz">\xff\xfe<a href="foo-2.0.tar.gz">'
    assert [link.filename for link in parse_html_page(body, BASE).links] == [
        "foo-1.0.tar.gz",
        "foo-2.0.tar.gz",
    ]


@PROPERTY
@given(st.binary(max_size=300))
def test_html_never_raises(body: bytes) -> None:
    """Arbitrary bytes parse to some (possibly empty) page, never an exception."""
    page = parse_html_page(b'<a href="x-1.tar.gz" ' + body, BASE)
    assert all(link.url.startswith("https://") for link in page.links)


# -- JSON ---------------------------------------------------------------------------------


def test_json_full_entry() -> None:
    """Every PEP 691/700/714 field is read from a JSON file entry."""
    found = only_json_link(
        json_file(
            "foo-1.0-py3-none-any.whl",
            hashes={"sha256": SHA.upper(), "md5": "x"},
            size=42,
            **{
                "requires-python": ">=3.8",
                "upload-time": TIME,
                "core-metadata": {"sha256": CORE},
                "yanked": "reason",
            },
        )
    )
    assert found == UpstreamLink(
        filename="foo-1.0-py3-none-any.whl",
        url="https://up.example/files/foo-1.0-py3-none-any.whl",
        sha256=SHA,
        size=42,
        requires_python=">=3.8",
        yanked="reason",
        upload_time=TIME,
        core_metadata_sha256=CORE,
    )


def test_json_page_flags_and_status() -> None:
    """JSON pages are marked is_json and carry project-status."""
    body = json_page(json_file(), **{"project-status": {"status": "archived", "reason": "done"}})
    page = parse_json_page(body, BASE)
    assert (page.is_json, page.status, page.status_reason) == (True, "archived", "done")
    odd = parse_json_page(json_page(**{"project-status": {"status": 3}}), BASE)
    assert (odd.status, odd.status_reason) == (None, None)


@pytest.mark.parametrize(
    ("yanked", "expected"),
    [(True, ""), ("why", "why"), (False, None), (None, None), ("", None), (0, None), (1, "")],
)
def test_json_yanked_variants(yanked: object, expected: str | None) -> None:
    """yanked true means an empty reason, a string is the reason, false/absent is not yanked."""
    assert only_json_link(json_file(yanked=yanked)).yanked == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"core-metadata": {"sha256": CORE}}, CORE),
        ({"dist-info-metadata": {"sha256": CORE}}, CORE),
        ({"core-metadata": {"sha256": CORE}, "dist-info-metadata": {"sha256": SHA}}, CORE),
        ({"core-metadata": True}, None),
        ({"core-metadata": False, "dist-info-metadata": {"sha256": CORE}}, None),
        ({"core-metadata": {"md5": "x"}}, None),
        ({"core-metadata": {"sha256": CORE + "\n"}}, None),
        ({"core-metadata": "sha256=" + CORE}, None),
    ],
)
def test_json_core_metadata(fields: dict[str, Any], expected: str | None) -> None:
    """core-metadata wins over dist-info-metadata; only a sha256 object yields a hash."""
    assert only_json_link(json_file("foo-1.0-py3-none-any.whl", **fields)).core_metadata_sha256 == (
        expected
    )


@pytest.mark.parametrize(
    ("size", "expected"), [(0, 0), (10, 10), (-1, None), (True, None), ("10", None), (1.5, None)]
)
def test_json_sizes(size: object, expected: int | None) -> None:
    """Only a non-negative integer (not a bool) is a size."""
    assert only_json_link(json_file(size=size)).size == expected


@pytest.mark.parametrize(
    "hashes",
    [{}, {"md5": "x"}, {"sha256": SHA + "\n"}, {"sha256": SHA[:-1]}, {"sha256": 5}, "sha256", None],
)
def test_json_bad_hashes_are_unknown(hashes: object) -> None:
    """A missing or malformed sha256 leaves the hash unknown rather than failing."""
    assert only_json_link(json_file(hashes=hashes)).sha256 is None


def test_json_requires_python_and_upload_time_types() -> None:
    """Non-string or empty requires-python and malformed upload-time are dropped."""
    entries = [
        json_file("a-1.tar.gz", **{"requires-python": 3, "upload-time": "yesterday"}),
        json_file("b-1.tar.gz", **{"requires-python": "", "upload-time": TIME + "\n"}),
    ]
    links = parse_json_page(json_page(*entries), BASE).links
    assert [(link.requires_python, link.upload_time) for link in links] == [(None, None)] * 2


def test_json_skips_bad_entries() -> None:
    """Entries without url or filename, unsafe names, non-archives, non-http URLs are skipped."""
    entries: list[Any] = [
        "not an object",
        {"filename": "foo-1.0.tar.gz"},
        {"url": "foo-1.0.tar.gz"},
        json_file("../foo-1.0.tar.gz"),
        json_file("foo-1.0.txt"),
        json_file("foo-1.0.tar.gz", url="file:///etc/foo-1.0.tar.gz"),
        json_file("foo-1.0.tar.gz", url=5),
        json_file("foo-2.0.tar.gz", url="https://cdn.example/foo-2.0.tar.gz#sha256=x"),
    ]
    (found,) = parse_json_page(json_page(*entries), BASE).links
    assert (found.filename, found.url) == ("foo-2.0.tar.gz", "https://cdn.example/foo-2.0.tar.gz")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"files"',
        b"{}",
        b'{"files": {}}',
        b'{"files": null}',
        b"[" * 100_000,
    ],
)
def test_json_shape_errors(body: bytes) -> None:
    """Unparsable JSON, non-objects and a missing 'files' list are PageFormatError."""
    with pytest.raises(PageFormatError):
        parse_json_page(body, BASE)


def test_parse_simple_page_dispatches_on_content_type() -> None:
    """JSON types go to the JSON parser, HTML (or no type, as old mirrors send) to the HTML
    parser; any other type, or a body that is no page, is refused rather than read as empty."""
    json_body = json_page(json_file())
    assert parse_simple_page(json_body, "application/vnd.pypi.simple.v1+json", BASE).is_json
    assert parse_simple_page(json_body, "Application/JSON; charset=utf-8", BASE).is_json
    html_page = parse_simple_page(html('<a href="a-1.tar.gz">x</a>'), "text/html", BASE)
    assert not html_page.is_json
    assert len(html_page.links) == 1
    assert len(parse_simple_page(html('<a href="a-1.tar.gz">x</a>'), "", BASE).links) == 1
    for body, content_type in (
        (html('<a href="a-1.tar.gz">x</a>'), "application/octet-stream"),
        (b"just words, no markup", "text/html"),
        (b"<html><body><a href=", "text/html"),
        (json_body, "text/html"),
    ):
        with pytest.raises(PageFormatError):
            parse_simple_page(body, content_type, BASE)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "",
        "text/html; charset=utf-8",
        "application/vnd.pypi.simple.v1+html",
        "application/vnd.pypi.simple.v1+json",
        "application/json",
    ],
)
@pytest.mark.parametrize("body", [b"", b"\n", b" \r\n\t"])
def test_empty_body_is_a_page_without_files(body: bytes, content_type: str) -> None:
    """An empty 200 of a page type is a project with no releases, as devpi reads it; it says
    nothing about upstream's representation, so it is not counted as JSON."""
    assert parse_simple_page(body, content_type, BASE) == UpstreamPage(links=(), is_json=False)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/octet-stream"),
        (b"", "image/png"),
        (b"no markup", "text/html"),
        (b"{", "application/vnd.pypi.simple.v1+json"),
        (b"null", "application/json"),
        (b"\0", "text/html"),
    ],
)
def test_empty_is_not_garbage(body: bytes, content_type: str) -> None:
    """Only an empty body is read as an empty page: another type, text without markup and
    invalid JSON stay errors."""
    with pytest.raises(PageFormatError):
        parse_simple_page(body, content_type, BASE)


# -- PyPI JSON API and enrichment ---------------------------------------------------------


def api_file(filename: str, **fields: Any) -> dict[str, Any]:
    """One file entry as /pypi/<name>/json lists it."""
    entry: dict[str, Any] = {
        "filename": filename,
        "digests": {"sha256": SHA, "md5": "x"},
        "size": 7,
        "upload_time_iso_8601": TIME,
        "upload_time": "2024-01-02T03:04:05",
    }
    entry.update(fields)
    return entry


def test_parse_pypi_json_facts() -> None:
    """Each release file gives size, upload time, sha256 and core-metadata hash by filename."""
    body = json.dumps(
        {
            "info": {},
            "releases": {
                "1.0": [
                    api_file("foo-1.0.tar.gz"),
                    api_file("foo-1.0-py3-none-any.whl", **{"core-metadata": {"sha256": CORE}}),
                ],
                "2.0": [
                    api_file(
                        "foo-2.0-py3-none-any.whl",
                        digests={"sha256": OTHER_SHA.upper()},
                        size=True,
                        upload_time_iso_8601="2024-01-02T03:04:05",
                        **{"data-dist-info-metadata": {"sha256": CORE}},
                    ),
                    "junk",
                    {"filename": 3},
                ],
                "3.0": "not a list",
            },
        }
    ).encode()
    assert parse_pypi_json(body) == {
        "foo-1.0.tar.gz": FileFacts(7, TIME, SHA, None),
        "foo-1.0-py3-none-any.whl": FileFacts(7, TIME, SHA, CORE),
        "foo-2.0-py3-none-any.whl": FileFacts(None, None, OTHER_SHA, CORE),
    }


@pytest.mark.parametrize("body", [b"{}", b'{"releases": []}', b"[]", b"nope"])
def test_parse_pypi_json_shape_errors(body: bytes) -> None:
    """Without a 'releases' object the document is a PageFormatError."""
    with pytest.raises(PageFormatError):
        parse_pypi_json(body)


def test_needs_enrichment() -> None:
    """A page needs the JSON API when any file lacks a size or an upload time."""
    complete = UpstreamLink("a-1.tar.gz", "https://x/a-1.tar.gz", SHA, 1, upload_time=TIME)
    assert not needs_enrichment(UpstreamPage((complete,), is_json=True))
    assert not needs_enrichment(UpstreamPage((), is_json=False))
    for partial in (replace(complete, size=None), replace(complete, upload_time=None)):
        assert needs_enrichment(UpstreamPage((complete, partial), is_json=False))


def upstream(filename: str, **fields: Any) -> UpstreamLink:
    """A page link for ``filename`` with only the given facts."""
    return UpstreamLink(filename, f"https://up.example/files/{filename}", **fields)


def enriched(link: UpstreamLink, facts: dict[str, FileFacts]) -> UpstreamLink:
    """Enrich a one-link HTML page and return its link."""
    (result,) = enrich(UpstreamPage((link,), is_json=False, status="active"), facts).links
    return result


def test_enrich_fills_missing_facts() -> None:
    """Size, upload time, sha256 and (for wheels) core-metadata come from the JSON API."""
    wheel = "foo-1.0-py3-none-any.whl"
    result = enriched(upstream(wheel), {wheel: FileFacts(5, TIME, SHA, CORE)})
    assert result == upstream(
        wheel, sha256=SHA, size=5, upload_time=TIME, core_metadata_sha256=CORE
    )


def test_enrich_keeps_page_facts() -> None:
    """What the page already says is never overridden, size 0 included."""
    wheel = "foo-1.0-py3-none-any.whl"
    link = upstream(
        wheel, sha256=SHA, size=0, upload_time="2020-01-01T00:00:00Z", core_metadata_sha256=CORE
    )
    assert enriched(link, {wheel: FileFacts(9, TIME, SHA, OTHER_SHA)}) == link


def test_enrich_matching_sha_fills_the_rest() -> None:
    """When both sides know the sha256 and agree, the missing facts are filled."""
    link = upstream("foo-1.0.tar.gz", sha256=SHA)
    result = enriched(link, {"foo-1.0.tar.gz": FileFacts(3, TIME, SHA, None)})
    assert (result.size, result.upload_time) == (3, TIME)


def test_enrich_never_takes_facts_when_sha256_disagrees() -> None:
    """Facts about a file with a different sha256 are about another file: take none of them."""
    wheel = "foo-1.0-py3-none-any.whl"
    link = upstream(wheel, sha256=SHA)
    assert enriched(link, {wheel: FileFacts(5, TIME, OTHER_SHA, CORE)}) == link


def test_enrich_core_metadata_only_for_wheels() -> None:
    """An sdist never gets a core-metadata hash, even if the JSON API offers one."""
    result = enriched(upstream("foo-1.0.tar.gz"), {"foo-1.0.tar.gz": FileFacts(5, TIME, SHA, CORE)})
    assert result.core_metadata_sha256 is None
    assert result.size == 5
    upper = enriched(
        upstream("foo-1.0-py3-none-any.WHL"),
        {"foo-1.0-py3-none-any.WHL": FileFacts(5, TIME, SHA, CORE)},
    )
    assert upper.core_metadata_sha256 == CORE


def test_enrich_without_facts_and_page_fields() -> None:
    """Files the JSON API does not list stay as they are; page-level fields are kept."""
    page = UpstreamPage(
        (upstream("a-1.tar.gz"), upstream("b-1.tar.gz")), is_json=False, status="archived"
    )
    result = enrich(page, {"b-1.tar.gz": FileFacts(1, None, None, None)})
    assert result.links[0] == page.links[0]
    assert result.links[1].size == 1
    assert (result.status, result.is_json) == ("archived", False)


def test_absurd_sizes_are_unknown() -> None:
    """Sizes past 1 TiB (2**63 overflowed SQLite and broke the project) are read as unknown."""
    entry = {"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "hashes": {}}
    for size, expected in ((2**63, None), (2**40 + 1, None), (-1, None), (1234, 1234)):
        body = json.dumps({"meta": {"api-version": "1.0"}, "files": [{**entry, "size": size}]})
        assert parse_json_page(body.encode(), BASE).links[0].size == expected
    html = f'<a href="foo-1.0.tar.gz" data-size="{10**17}">f</a>'.encode()
    assert parse_html_page(html, BASE).links[0].size is None
    document = {"releases": {"1.0": [{"filename": "foo-1.0.tar.gz", "size": 2**64}]}}
    assert parse_pypi_json(json.dumps(document).encode())["foo-1.0.tar.gz"].size is None


def test_pages_with_too_many_links_are_refused() -> None:
    """A page listing more than MAX_PAGE_LINKS files is upstream failing, HTML or JSON."""
    from cheeseboard.mirror.parse import MAX_PAGE_LINKS

    count = MAX_PAGE_LINKS + 1
    html = ("<html>" + '<a href="foo-1.0.tar.gz">f</a>' * count + "</html>").encode()
    with pytest.raises(PageFormatError, match="more than"):
        parse_simple_page(html, "text/html", BASE)
    files = [{"filename": "foo-1.0.tar.gz", "url": "foo-1.0.tar.gz", "hashes": {}}] * count
    with pytest.raises(PageFormatError, match="more than"):
        parse_json_page(json.dumps({"files": files}).encode(), BASE)
    fine = ("<html>" + '<a href="foo-1.0.tar.gz">f</a>' * MAX_PAGE_LINKS + "</html>").encode()
    assert len(parse_simple_page(fine, "text/html", BASE).links) == MAX_PAGE_LINKS
