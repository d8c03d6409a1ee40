"""Fuzzing METADATA / PKG-INFO parsing and the upload form: only clean errors, and what is
accepted is what was sent."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from cheeseboard.core.distfiles import canonical_version
from cheeseboard.core.metadata import parse_core_metadata
from cheeseboard.core.uploads import (
    FileExists,
    UploadError,
    UploadForm,
    check_artifact_metadata,
    parse_upload_form,
)
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ, any_text, hostile_text, project_names, versions

HEADERS = [
    "Metadata-Version",
    "Name",
    "Version",
    "Summary",
    "Description",
    "Description-Content-Type",
    "Requires-Dist",
    "Requires-Python",
    "Project-URL",
    "Classifier",
    "Content-Type",  # multipart/… makes the email parser return a list as the body
    "Content-Transfer-Encoding",
    "MIME-Version",
    "From",
]
LIST_KEYS = {
    "classifiers",
    "platform",
    "requires_dist",
    "provides_extra",
    "provides_dist",
    "obsoletes_dist",
    "requires_external",
    "dynamic",
    "license_files",
}
header_line = st.builds(
    lambda name, sep, value: f"{name}{sep}{value}",
    st.sampled_from(HEADERS) | st.text(max_size=10),
    st.sampled_from([": ", ":", " : ", "", "\n "]),
    st.one_of(
        hostile_text,
        st.sampled_from(
            ["multipart/mixed; boundary=x", "base64", "quoted-printable", "=?utf-8?q?x?="]
        ),
    ),
)
metadata_text = st.builds(
    lambda lines, ending, body: ending.join(lines) + ending + ending + body,
    st.lists(header_line, max_size=12),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.one_of(st.just(""), hostile_text, st.just("--x\n\nbody\n--x--\n")),
)
metadata_bytes = st.one_of(
    st.binary(max_size=300),
    metadata_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def _form(name: str = "pkg", version: str = "1.0") -> UploadForm:
    return parse_upload_form({":action": ["file_upload"], "name": [name], "version": [version]})


@FUZZ
@given(metadata_bytes)
@counted("metadata: parse_core_metadata (arbitrary bytes)")
def test_parser_never_raises(data: bytes) -> None:
    """Any bytes parse into the PyPI JSON ``info`` shape, and that shape serializes as JSON."""
    fields = parse_core_metadata(data)
    for key, value in fields.items():
        if key in LIST_KEYS:
            assert isinstance(value, list) and all(isinstance(item, str) for item in value)
        elif key == "project_urls":
            assert isinstance(value, dict)
        else:
            assert value is None or isinstance(value, str)
    json.dumps(fields, ensure_ascii=False).encode("utf-8")  # storable: no lone surrogates


@FUZZ
@given(project_names, versions, st.one_of(st.none(), metadata_bytes))
@counted("metadata: check_artifact_metadata (arbitrary bytes)")
def test_artifact_check_raises_only_upload_error(
    name: str, version: str, data: bytes | None
) -> None:
    """Whatever the archive holds, the upload gets its fields or a 400 UploadError."""
    try:
        fields = check_artifact_metadata(_form(name, version), "f.whl", data)
    except UploadError as exc:
        assert not isinstance(exc, FileExists) and exc.message
        assert len(exc.message) < 600
        return
    assert canonicalize_name(str(fields["name"]).strip()) == canonicalize_name(name)
    assert canonical_version(str(fields["version"]).strip()) == canonical_version(version)


@FUZZ
@given(
    project_names,
    versions,
    st.text(
        st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters=":"),
        max_size=60,
    ).map(str.strip),
    st.lists(st.sampled_from(["requests>=2", "attrs; extra == 'x'", "a[b]<3"]), max_size=3),
)
@counted("metadata: round trip")
def test_well_formed_metadata_round_trips(
    name: str, version: str, summary: str, requires: list[str]
) -> None:
    """Fields written as core metadata come back as written, for any printable summary."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    lines += [f"Requires-Dist: {req}" for req in requires]
    data = ("\n".join(lines) + "\n\nThe description.\n").encode()
    fields = check_artifact_metadata(_form(name, version), "f.whl", data)
    assert (fields["name"], fields["version"]) == (name, version)
    assert fields["summary"] == (summary or None)
    assert fields["requires_dist"] == requires
    assert fields["description"] == "The description.\n"


form_values = st.lists(st.one_of(any_text, st.sampled_from(["file_upload", "1", "pkg", "1.0"])))
form_keys = st.sampled_from(
    [":action", "protocol_version", "name", "version", "filetype", "sha256_digest", "md5_digest"]
) | st.text(max_size=10)


@FUZZ
@given(st.dictionaries(form_keys, form_values, max_size=8), st.none() | any_text)
@counted("multipart fields: parse_upload_form (arbitrary)")
def test_upload_form_raises_only_upload_error(
    fields: dict[str, list[str]], query_action: str | None
) -> None:
    """Any set of form fields gives a checked form or a 400 UploadError: an accepted form has a
    known action, and for a file upload a valid name and version."""
    try:
        form = parse_upload_form(fields, query_action)
    except UploadError as exc:
        assert not isinstance(exc, FileExists)
        assert len(exc.message) < 600
        return
    assert form.action in ("file_upload", "doc_upload", "submit")
    if form.action == "file_upload":
        assert canonicalize_name(form.name) and form.name.strip() == form.name
        assert canonical_version(form.version) and form.version.strip() == form.version
    for key, values in form.metadata.items():
        assert values and all(value != "" for value in values), key
