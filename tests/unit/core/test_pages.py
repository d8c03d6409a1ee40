"""Simple-API rendering: PEP 503 HTML and PEP 691/700 JSON from one page model."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from cheeseboard.core.pages import (
    API_VERSION,
    FileLink,
    ProjectList,
    ProjectPage,
    collect_versions,
    render_list_html,
    render_list_json,
    render_project_html,
    render_project_json,
)

SHA = "ab" * 32
CORE = "cd" * 32
UPLOAD_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def link(filename: str = "foo-1.0.tar.gz", **overrides: Any) -> FileLink:
    """A FileLink under root/pypi's +f route, with a hash."""
    fields: dict[str, Any] = {
        "filename": filename,
        "path": f"root/pypi/+f/{SHA[:3]}/{SHA[3:16]}/{filename}",
        "version": "1.0",
        "sha256": SHA,
    }
    fields.update(overrides)
    return FileLink(**fields)


def page(*links: FileLink, **overrides: Any) -> ProjectPage:
    """A ProjectPage for project foo holding ``links``."""
    fields: dict[str, Any] = {
        "index": "root/pypi",
        "name": "foo",
        "files": links,
        "versions": collect_versions(links),
        "last_serial": 7,
    }
    fields.update(overrides)
    return ProjectPage(**fields)


class Anchors(HTMLParser):
    """Collect <a> attributes and text, and <meta> name/content pairs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)
        elif tag == "meta":
            values = dict(attrs)
            self.meta[values["name"] or ""] = values.get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.anchors.append((self._open, data))
            self._open = None


def parse_html(body: bytes) -> Anchors:
    """Parse rendered HTML the way an installer would."""
    parser = Anchors()
    parser.feed(body.decode())
    parser.close()
    return parser


def check_project_json(doc: dict[str, Any]) -> None:
    """Assert the PEP 691 project-detail shape with PEP 700/714/792 fields at api-version 1.4."""
    assert set(doc) <= {"meta", "name", "files", "versions", "project-status"}
    assert doc["meta"]["api-version"] == API_VERSION == "1.4"
    assert isinstance(doc["meta"]["_last-serial"], int)
    assert isinstance(doc["name"], str)
    assert doc["name"] == re.sub(r"[-_.]+", "-", doc["name"]).lower()
    assert isinstance(doc["versions"], list)
    assert all(isinstance(v, str) for v in doc["versions"])
    allowed = {
        "filename",
        "url",
        "hashes",
        "requires-python",
        "yanked",
        "size",
        "upload-time",
        "core-metadata",
    }
    for entry in doc["files"]:
        assert set(entry) <= allowed, set(entry) - allowed
        assert {"filename", "url", "hashes"} <= set(entry)
        assert isinstance(entry["filename"], str)
        assert isinstance(entry["url"], str)
        assert isinstance(entry["hashes"], dict)
        assert all(isinstance(v, str) for v in entry["hashes"].values())
        if "yanked" in entry:
            assert entry["yanked"] is True or (isinstance(entry["yanked"], str) and entry["yanked"])
        if "size" in entry:
            assert isinstance(entry["size"], int) and not isinstance(entry["size"], bool)
        if "upload-time" in entry:
            assert UPLOAD_TIME.fullmatch(entry["upload-time"])
        if "core-metadata" in entry:
            assert entry["core-metadata"] is True or set(entry["core-metadata"]) == {"sha256"}
        if "requires-python" in entry:
            assert isinstance(entry["requires-python"], str)
    if "project-status" in doc:
        assert set(doc["project-status"]) <= {"status", "reason"}
        assert doc["project-status"]["status"] in {
            "active",
            "archived",
            "quarantined",
            "deprecated",
        }


# -- HTML ---------------------------------------------------------------------------------


def test_html_meta_and_title() -> None:
    """The page declares repository-version 1.4 and titles itself after the project."""
    html = parse_html(render_project_html(page(link())))
    assert html.meta == {"pypi:repository-version": "1.4"}
    body = render_project_html(page(link())).decode()
    assert "<title>Links for foo</title>" in body
    assert body.startswith("<!DOCTYPE html>\n")


def test_html_href_is_relative_to_server_root_with_hash() -> None:
    """href climbs four levels from <user>/<index>/+simple/<name>/ and carries #sha256."""
    entry = link()
    ((attrs, text),) = parse_html(render_project_html(page(entry))).anchors
    assert attrs["href"] == f"../../../../{entry.path}#sha256={SHA}"
    assert text == "foo-1.0.tar.gz"


def test_html_href_without_hash() -> None:
    """A file without a known sha256 gets no fragment."""
    entry = link(sha256=None, path="root/pypi/+e/https_files.example_x/foo-1.0.tar.gz")
    ((attrs, _),) = parse_html(render_project_html(page(entry))).anchors
    assert attrs["href"] == f"../../../../{entry.path}"


def test_html_plus_in_filename_is_escaped_in_href_only() -> None:
    """'+' in a file name is %2B in the href, raw in the text; route '+f' stays raw."""
    name = "torch-2.0.0+cpu-cp311-cp311-linux_x86_64.whl"
    ((attrs, text),) = parse_html(render_project_html(page(link(name)))).anchors
    href = attrs["href"] or ""
    assert href.startswith(f"../../../../root/pypi/+f/{SHA[:3]}/{SHA[3:16]}/")
    assert href.endswith(f"/torch-2.0.0%2Bcpu-cp311-cp311-linux_x86_64.whl#sha256={SHA}")
    assert text == name
    assert b">torch-2.0.0+cpu-cp311" in render_project_html(page(link(name)))


def test_html_requires_python_is_escaped() -> None:
    """'<' and '>' in data-requires-python are written as entities and read back intact."""
    body = render_project_html(page(link(requires_python=">=3.8,<4")))
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in body
    ((attrs, _),) = parse_html(body).anchors
    assert attrs["data-requires-python"] == ">=3.8,<4"


def test_html_yanked_only_when_yanked() -> None:
    """data-yanked appears for yanked files (empty reason included) and never otherwise."""
    body = render_project_html(
        page(
            link("a-1.tar.gz"),
            link("b-1.tar.gz", yanked=""),
            link("c-1.tar.gz", yanked='broken <"build">'),
        )
    )
    anchors = {text: attrs for attrs, text in parse_html(body).anchors}
    assert "data-yanked" not in anchors["a-1.tar.gz"]
    assert anchors["b-1.tar.gz"]["data-yanked"] == ""
    assert anchors["c-1.tar.gz"]["data-yanked"] == 'broken <"build">'
    assert b'data-yanked=""' in body
    assert b'data-yanked="broken &lt;&quot;build&quot;&gt;"' in body


def test_html_core_metadata_attributes() -> None:
    """A known metadata hash is advertised as data-core-metadata and data-dist-info-metadata."""
    body = render_project_html(
        page(link("foo-1.0-py3-none-any.whl", core_metadata_sha256=CORE), link())
    )
    anchors = {text: attrs for attrs, text in parse_html(body).anchors}
    wheel = anchors["foo-1.0-py3-none-any.whl"]
    assert wheel["data-core-metadata"] == f"sha256={CORE}"
    assert wheel["data-dist-info-metadata"] == f"sha256={CORE}"
    assert "data-core-metadata" not in anchors["foo-1.0.tar.gz"]
    assert "data-dist-info-metadata" not in anchors["foo-1.0.tar.gz"]


def test_html_size_and_upload_time_hints() -> None:
    """Known sizes (including 0) and upload times become data-size / data-upload-time."""
    body = render_project_html(
        page(link("a-1.tar.gz", size=0, upload_time="2024-01-02T03:04:05Z"), link("b-1.tar.gz"))
    )
    anchors = {text: attrs for attrs, text in parse_html(body).anchors}
    assert anchors["a-1.tar.gz"]["data-size"] == "0"
    assert anchors["a-1.tar.gz"]["data-upload-time"] == "2024-01-02T03:04:05Z"
    assert "data-size" not in anchors["b-1.tar.gz"]
    assert "data-upload-time" not in anchors["b-1.tar.gz"]


def test_html_project_status_meta() -> None:
    """PEP 792 status (and reason, escaped) appear as meta tags."""
    html = parse_html(render_project_html(page(status="archived", status_reason="moved <here>")))
    assert html.meta["pypi:project-status"] == "archived"
    assert html.meta["pypi:project-status-reason"] == "moved <here>"
    bare = parse_html(render_project_html(page(status_reason="ignored without status")))
    assert set(bare.meta) == {"pypi:repository-version"}


def test_html_escapes_project_name_and_filename() -> None:
    """Markup in names cannot break out of the page."""
    body = render_project_html(page(link("a&b-1.tar.gz"), name="<x>")).decode()
    assert "<x>" not in body
    assert "Links for &lt;x&gt;" in body
    assert ">a&amp;b-1.tar.gz</a>" in body


def test_html_empty_page() -> None:
    """A project without files still renders a valid page with no links."""
    html = parse_html(render_project_html(page()))
    assert html.anchors == []


# -- JSON ---------------------------------------------------------------------------------


def test_json_document_shape() -> None:
    """Project detail JSON follows PEP 691/700 at api-version 1.4."""
    links = (
        link("foo-1.0.tar.gz", size=10, upload_time="2024-01-02T03:04:05.123456Z"),
        link("foo-1.0-py3-none-any.whl", core_metadata_sha256=CORE, requires_python=">=3.8"),
        link("foo-2.0.tar.gz", version="2.0", yanked="bad"),
        link("foo-2.0.zip", version="2.0", sha256=None, yanked=""),
    )
    doc = json.loads(render_project_json(page(*links, status="deprecated", status_reason="old")))
    check_project_json(doc)
    assert doc["meta"] == {"api-version": "1.4", "_last-serial": 7}
    assert doc["versions"] == ["1.0", "2.0"]
    assert doc["project-status"] == {"status": "deprecated", "reason": "old"}
    files = {entry["filename"]: entry for entry in doc["files"]}
    assert list(files) == [entry.filename for entry in links]
    sdist = files["foo-1.0.tar.gz"]
    assert sdist == {
        "filename": "foo-1.0.tar.gz",
        "url": f"../../../../{links[0].path}#sha256={SHA}",
        "hashes": {"sha256": SHA},
        "size": 10,
        "upload-time": "2024-01-02T03:04:05.123456Z",
    }
    wheel = files["foo-1.0-py3-none-any.whl"]
    assert wheel["core-metadata"] == {"sha256": CORE}
    assert wheel["requires-python"] == ">=3.8"
    assert "size" not in wheel
    assert files["foo-2.0.zip"]["hashes"] == {}


def test_json_yanked_reason_or_true() -> None:
    """yanked is the reason when there is one, true for an empty reason, absent otherwise."""
    doc = json.loads(
        render_project_json(
            page(link("a-1.tar.gz"), link("b-1.tar.gz", yanked=""), link("c-1.tar.gz", yanked="r"))
        )
    )
    files = {entry["filename"]: entry for entry in doc["files"]}
    assert "yanked" not in files["a-1.tar.gz"]
    assert files["b-1.tar.gz"]["yanked"] is True
    assert files["c-1.tar.gz"]["yanked"] == "r"


def test_json_never_has_dist_info_metadata() -> None:
    """PEP 714: JSON uses only 'core-metadata' (dist-info-metadata broke pip 22.3)."""
    body = render_project_json(page(link("foo-1.0-py3-none-any.whl", core_metadata_sha256=CORE)))
    assert b"dist-info-metadata" not in body
    assert json.loads(body)["files"][0]["core-metadata"] == {"sha256": CORE}


def test_json_size_only_when_known() -> None:
    """size 0 is reported; an unknown size is left out."""
    doc = json.loads(render_project_json(page(link("a-1.tar.gz", size=0), link("b-1.tar.gz"))))
    assert doc["files"][0]["size"] == 0
    assert "size" not in doc["files"][1]


def test_json_name_is_normalized() -> None:
    """PEP 691 'name' is the normalized project name whatever the page was built with."""
    doc = json.loads(render_project_json(page(name="Foo.Bar_baz")))
    assert doc["name"] == "foo-bar-baz"
    check_project_json(doc)


def test_json_plus_in_filename() -> None:
    """The JSON url escapes '+' in the file name like the HTML href; filename stays raw."""
    name = "foo-1.0+local-py3-none-any.whl"
    (entry,) = json.loads(render_project_json(page(link(name))))["files"]
    assert entry["filename"] == name
    assert "/+f/" in entry["url"]
    assert entry["url"].endswith(f"/foo-1.0%2Blocal-py3-none-any.whl#sha256={SHA}")


def test_json_is_compact_ascii_safe() -> None:
    """Rendering is compact, ASCII-only JSON; non-ASCII reasons survive the round trip."""
    body = render_project_json(page(link(yanked="kaputt \u2013 \u00fcnicode")))
    assert b": " not in body
    assert body.isascii()
    assert json.loads(body)["files"][0]["yanked"] == "kaputt \u2013 \u00fcnicode"


def test_json_without_status_has_no_project_status() -> None:
    """project-status is only present when the project has a status."""
    doc = json.loads(render_project_json(page()))
    assert "project-status" not in doc
    assert doc["files"] == []
    assert doc["versions"] == []
    check_project_json(doc)


# -- project lists and versions -----------------------------------------------------------


def test_list_html() -> None:
    """The root page links each project relative to itself."""
    body = render_list_html(ProjectList("root/pypi", ("alpha", "beta-two"), 3))
    html = parse_html(body)
    assert html.meta == {"pypi:repository-version": "1.4"}
    assert [(attrs["href"], text) for attrs, text in html.anchors] == [
        ("alpha/", "alpha"),
        ("beta-two/", "beta-two"),
    ]
    assert b"<title>Simple index: root/pypi</title>" in body


def test_list_json() -> None:
    """The project list is PEP 691: meta plus a list of {name} objects."""
    doc = json.loads(render_list_json(ProjectList("root/pypi", ("alpha", "beta-two"), 3)))
    assert doc == {
        "meta": {"api-version": "1.4", "_last-serial": 3},
        "projects": [{"name": "alpha"}, {"name": "beta-two"}],
    }


def test_empty_list() -> None:
    """An index without projects renders an empty list in both forms."""
    listing = ProjectList("u/i", ())
    assert parse_html(render_list_html(listing)).anchors == []
    assert json.loads(render_list_json(listing))["projects"] == []


def test_collect_versions_first_seen_order_without_duplicates() -> None:
    """versions lists each version once, in first-seen order, skipping unknown ones."""
    links = [
        link("a-2.0.tar.gz", version="2.0"),
        link("a-1.0.tar.gz", version="1.0"),
        link("a-2.0.zip", version="2.0"),
        link("a.tar.gz", version=None),
    ]
    assert collect_versions(links) == ("2.0", "1.0")
