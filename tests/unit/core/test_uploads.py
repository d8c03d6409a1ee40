"""Validating legacy upload forms, file names, digests and the artifact's metadata."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from cheeseboard.core.uploads import (
    Digests,
    FileExists,
    UploadError,
    UploadForm,
    check_artifact_metadata,
    check_existing_file,
    check_file_upload,
    parse_upload_form,
)
from tests.support.packages import Dist, build_sdist, build_wheel

METADATA = b"Metadata-Version: 2.1\nName: My_Pkg\nVersion: 1.0\nSummary: s\n"


def twine_fields(**overrides: Sequence[str]) -> dict[str, Sequence[str]]:
    """Fields as twine sends them for my_pkg 1.0's wheel (name with '_' turned into '-')."""
    fields: dict[str, Sequence[str]] = {
        ":action": ["file_upload"],
        "protocol_version": ["1"],
        "name": ["my-pkg"],
        "version": ["1.0"],
        "filetype": ["bdist_wheel"],
        "pyversion": ["py3"],
        "metadata_version": ["2.1"],
        "summary": ["A test package"],
        "classifiers": ["Programming Language :: Python", "License :: OSI Approved"],
        "requires_dist": ["b>=1", "a"],
        "sha256_digest": ["AB" * 32],
        "blake2_256_digest": ["cd" * 32],
        "comment": [""],
    }
    fields.update(overrides)
    return fields


def form(**overrides: Sequence[str]) -> UploadForm:
    """A parsed twine-style form with ``overrides``."""
    return parse_upload_form(twine_fields(**overrides))


def refused(call: Callable[[], object]) -> str:
    """Run ``call``, expect a 400 refusal and return its message."""
    with pytest.raises(UploadError) as caught:
        call()
    assert not isinstance(caught.value, FileExists)
    assert caught.value.message == str(caught.value)
    # poetry takes this phrase for "register first" and retries with :action=submit.
    assert "was ever registered" not in caught.value.message
    return caught.value.message


def digests_of(data: bytes) -> tuple[str, str, str]:
    """md5, sha256 and blake2b-256 hex digests, as the route computes them."""
    return (
        hashlib.md5(data).hexdigest(),  # noqa: S324 - the legacy API's checksum, not security
        hashlib.sha256(data).hexdigest(),
        hashlib.blake2b(data, digest_size=32).hexdigest(),
    )


# -- parse_upload_form --------------------------------------------------------------------------


def test_twine_form() -> None:
    """A twine form splits into protocol fields, lowercase digests and metadata."""
    parsed = form()
    assert parsed.action == "file_upload"
    assert (parsed.name, parsed.version) == ("my-pkg", "1.0")
    assert (parsed.filetype, parsed.pyversion, parsed.metadata_version) == (
        "bdist_wheel",
        "py3",
        "2.1",
    )
    assert parsed.digests == Digests(md5=None, sha256="ab" * 32, blake2_256="cd" * 32)
    assert parsed.comment is None
    assert parsed.attestations is None
    assert dict(parsed.metadata) == {
        "summary": ("A test package",),
        "classifiers": ("Programming Language :: Python", "License :: OSI Approved"),
        "requires_dist": ("b>=1", "a"),
    }


def test_uv_form_keeps_name_as_sent() -> None:
    """uv sends the Name field unchanged; the form keeps it, with no md5 and no comment."""
    fields = twine_fields(name=["My_Pkg"], md5_digest=[], comment=[])
    del fields["protocol_version"]
    parsed = parse_upload_form(fields)
    assert parsed.name == "My_Pkg"
    assert parsed.digests.md5 is None


def test_repeated_metadata_fields_keep_their_order() -> None:
    """Repeated fields (project_urls, provides_extra, import_names) keep every value in order."""
    urls = ["Home, https://example.org", "Docs, https://docs.example.org", "Home, https://x.org"]
    parsed = form(project_urls=urls, provides_extra=["test", "doc"], import_names=["my_pkg"])
    assert parsed.metadata["project_urls"] == tuple(urls)
    assert parsed.metadata["provides_extra"] == ("test", "doc")
    assert parsed.metadata["import_names"] == ("my_pkg",)


def test_empty_values_count_as_not_sent() -> None:
    """Empty strings are dropped: from metadata lists and for single fields."""
    parsed = form(keywords=[""], platform=["", "linux", ""], filetype=[""], pyversion=[""])
    assert "keywords" not in parsed.metadata
    assert parsed.metadata["platform"] == ("linux",)
    assert (parsed.filetype, parsed.pyversion) == (None, None)


def test_protocol_fields_are_not_metadata() -> None:
    """Digests, signature, attestations, comment and the file part never land in metadata."""
    parsed = form(
        md5_digest=["ee" * 16],
        gpg_signature=["-----BEGIN PGP SIGNATURE-----"],
        attestations=['[{"version": 1}]'],
        comment=["hello"],
        content=["not a file"],
    )
    assert set(parsed.metadata) == {"summary", "classifiers", "requires_dist"}
    assert parsed.attestations == '[{"version": 1}]'
    assert parsed.comment == "hello"
    assert parsed.digests.md5 == "ee" * 16


def test_plain_string_values() -> None:
    """A lone string counts as one value, not as a sequence of characters."""
    fields: Mapping[str, Sequence[str]] = {
        ":action": "file_upload",
        "name": "foo",
        "version": "2.0",
        "summary": "hello",
    }
    parsed = parse_upload_form(fields)
    assert (parsed.name, parsed.version) == ("foo", "2.0")
    assert parsed.metadata == {"summary": ("hello",)}


def test_same_single_value_twice() -> None:
    """A single-valued field sent twice with the same value is accepted."""
    assert form(version=["1.0", "1.0"]).version == "1.0"


def test_single_value_twice_differently() -> None:
    """A single-valued field sent twice with different values is ambiguous: 400."""
    assert "version" in refused(lambda: form(version=["1.0", "2.0"]))


def test_missing_action() -> None:
    """No :action in the form or the query: 400."""
    fields = twine_fields()
    del fields[":action"]
    assert "missing :action" in refused(lambda: parse_upload_form(fields))
    assert "missing :action" in refused(lambda: form(**{":action": [""]}))


def test_action_from_query() -> None:
    """:action may come in the query string; the form's wins when both are there."""
    fields = twine_fields()
    del fields[":action"]
    assert parse_upload_form(fields, query_action="file_upload").action == "file_upload"
    assert parse_upload_form(twine_fields(), query_action="submit").action == "file_upload"


@pytest.mark.parametrize("action", ["register", "remove_pkg", "FILE_UPLOAD", "verify"])
def test_unknown_action(action: str) -> None:
    """Actions other than file_upload, doc_upload and submit: 400."""
    assert "unsupported :action" in refused(lambda: form(**{":action": [action]}))


def test_protocol_version() -> None:
    """protocol_version 1 or none is accepted; 2 is refused with 400."""
    fields = twine_fields()
    del fields["protocol_version"]
    assert parse_upload_form(fields).action == "file_upload"
    assert "protocol_version" in refused(lambda: form(protocol_version=["2"]))


@pytest.mark.parametrize("field", ["name", "version"])
def test_file_upload_needs_name_and_version(field: str) -> None:
    """file_upload without name or version: 400 naming the field."""
    assert f"missing {field}" in refused(lambda: form(**{field: []}))


def test_doc_upload_and_submit_are_lenient() -> None:
    """doc_upload needs only a name; poetry's submit needs nothing (the route answers 200)."""
    doc = parse_upload_form({":action": ["doc_upload"], "name": ["foo"]})
    assert (doc.action, doc.name, doc.version) == ("doc_upload", "foo", "")
    submit = parse_upload_form({":action": ["submit"]})
    assert (submit.action, submit.name, submit.version) == ("submit", "", "")
    assert "missing name" in refused(lambda: parse_upload_form({":action": ["doc_upload"]}))


@pytest.mark.parametrize("version", ["latest", "1.0-beta-x", "1..0", " 1.0", "1.0\n", "v"])
def test_invalid_version(version: str) -> None:
    """A version that is not PEP 440: 400 "invalid version"."""
    assert "invalid version" in refused(lambda: form(version=[version]))


@pytest.mark.parametrize("version", ["1.0.post1", "v1.0", "2024.1rc1", "1.0+local.7", "1!2.0"])
def test_valid_versions(version: str) -> None:
    """PEP 440 versions are accepted and kept as sent."""
    assert form(version=[version]).version == version


@pytest.mark.parametrize("name", ["-foo", "foo bar", "f/oo", "föö", "foo_"])
def test_invalid_name(name: str) -> None:
    """A name that is not a PEP 508 project name: 400."""
    assert "invalid project name" in refused(lambda: form(name=[name]))


def test_long_input_is_cut_in_messages() -> None:
    """A huge field value is not echoed back whole."""
    message = refused(lambda: form(version=["x" * 100_000]))
    assert len(message) < 300


# -- Digests ------------------------------------------------------------------------------------


def test_digests_match() -> None:
    """All three digests sent and right: accepted, whatever their case."""
    md5, sha256, blake2 = digests_of(b"data")
    Digests(md5=md5, sha256=sha256, blake2_256=blake2).verify(md5, sha256.upper(), blake2)
    sent = form(
        md5_digest=[md5.upper()], sha256_digest=[sha256.upper()], blake2_256_digest=[blake2]
    )
    sent.digests.verify(md5, sha256, blake2)


def test_bad_sha256() -> None:
    """A sha256_digest that differs from the file's: 400 naming the field."""
    md5, sha256, blake2 = digests_of(b"data")
    message = refused(lambda: Digests(None, "00" * 32, None).verify(md5, sha256, blake2))
    assert "sha256_digest" in message
    assert sha256 in message


def test_bad_blake2_with_good_sha256() -> None:
    """Every digest sent is checked: a wrong blake2_256 fails even with a right sha256."""
    md5, sha256, blake2 = digests_of(b"data")
    message = refused(lambda: Digests(md5, sha256, "ff" * 32).verify(md5, sha256, blake2))
    assert "blake2_256_digest" in message


def test_no_digest() -> None:
    """No digest at all: 400 "no digest"."""
    parsed = form(sha256_digest=[], blake2_256_digest=[""])
    assert "no digest" in refused(lambda: parsed.digests.verify(*digests_of(b"data")))


def test_md5_only() -> None:
    """An md5 hex digest alone is accepted (older poetry, pdm, hatch, twine < 6.2)."""
    md5, sha256, blake2 = digests_of(b"data")
    form(md5_digest=[md5], sha256_digest=[], blake2_256_digest=[]).digests.verify(
        md5, sha256, blake2
    )
    assert "md5_digest" in refused(
        lambda: Digests("0" * 32, None, None).verify(md5, sha256, blake2)
    )


# -- check_file_upload --------------------------------------------------------------------------


def test_wheel_file(tmp_path: Path) -> None:
    """A twine-style wheel upload gives the normalized project, the form's version, the type."""
    wheel = build_wheel(tmp_path, "my_pkg", "1.0")
    assert wheel.filename == "my_pkg-1.0-py3-none-any.whl"
    assert check_file_upload(form(), wheel.filename) == ("my-pkg", "1.0", "bdist_wheel")


def test_sdist_file(tmp_path: Path) -> None:
    """A uv-style sdist upload (Name as is, pyversion source) passes."""
    sdist = build_sdist(tmp_path, "My_Pkg", "1.0")
    parsed = form(name=["My_Pkg"], filetype=["sdist"], pyversion=["source"])
    assert check_file_upload(parsed, sdist.filename) == ("my-pkg", "1.0", "sdist")


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("my_pkg-1.0.zip", "sdist"),
        ("My.Pkg-1.0.tar.bz2", "sdist"),
        ("my-pkg-1.0.tgz", "sdist"),
        ("MY_PKG-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "bdist_wheel"),
        ("my_pkg-1.0-1build-py2.py3-none-any.whl", "bdist_wheel"),
    ],
)
def test_filetype_inferred(filename: str, kind: str) -> None:
    """Without a filetype field, the extension decides; name spellings match by normalization."""
    parsed = form(filetype=[], pyversion=[])
    assert check_file_upload(parsed, filename) == ("my-pkg", "1.0", kind)


@pytest.mark.parametrize(
    ("form_version", "filename"),
    [
        ("1.0", "my_pkg-1.0.0-py3-none-any.whl"),
        ("1.0.0", "my_pkg-1.0-py3-none-any.whl"),
        ("1.0", "my-pkg-1.0.0.tar.gz"),
        ("1.0.post1", "my_pkg-1.0_post1-py3-none-any.whl"),  # PEP 427 escaping
        ("1.0.post1", "my-pkg-1.0-1.tar.gz"),
        ("1.0RC1", "my_pkg-1.0rc1-py3-none-any.whl"),
    ],
)
def test_version_matches_canonically(form_version: str, filename: str) -> None:
    """Form and filename versions match canonically (1.0 == 1.0.0); the form's is returned."""
    parsed = form(version=[form_version], filetype=[], pyversion=[])
    assert check_file_upload(parsed, filename)[1] == form_version


@pytest.mark.parametrize(
    "filename",
    ["../my_pkg-1.0.tar.gz", "dir/my_pkg-1.0.tar.gz", "C:\\my_pkg-1.0.tar.gz", "a\0.tar.gz", ""],
)
def test_filename_with_path_separator(filename: str) -> None:
    """'/', '\\' and NUL in the filename (or none at all): 400."""
    assert "invalid filename" in refused(lambda: check_file_upload(form(), filename))


@pytest.mark.parametrize(
    "filename", ["my pkg-1.0.tar.gz", "my_pkg-1.0.txt", ".my_pkg-1.0.tar.gz", "x" * 300 + ".whl"]
)
def test_unsafe_filename(filename: str) -> None:
    """Names with odd characters or no archive extension: 400."""
    assert "invalid filename" in refused(lambda: check_file_upload(form(), filename))


@pytest.mark.parametrize(
    ("filename", "filetype", "fmt"),
    [
        ("my_pkg-1.0-py3.8.egg", [], "bdist_egg"),
        ("my_pkg-1.0-py3.8.egg", ["bdist_egg"], "bdist_egg"),
        ("my_pkg-1.0.win32.exe", [], "bdist_wininst"),
        ("my_pkg-1.0.linux-x86_64.tar.gz", ["sdist"], "bdist_dumb"),  # as devpi-client sends it
        ("my_pkg-1.0.linux-x86_64.tar.gz", [], "bdist_dumb"),
        ("my-pkg-1.0.macosx-14.0-arm64.zip", ["bdist_dumb"], "bdist_dumb"),
        ("my_pkg-1.0.tar.gz", ["bdist_dumb"], "bdist_dumb"),
    ],
)
def test_legacy_formats_refused_by_name(filename: str, filetype: list[str], fmt: str) -> None:
    """Eggs, installers and bdist_dumb archives: 400 naming the format (README, devpi
    compatibility), never a version mismatch."""
    message = refused(lambda: check_file_upload(form(filetype=filetype), filename))
    assert "unsupported file" in message and f"{fmt} is a legacy format" in message
    assert "has version" not in message


@pytest.mark.parametrize("filename", ["my_pkg-1.0.dev1.tar.gz", "my_pkg-1.0.post1.zip"])
def test_sdists_of_longer_versions_are_not_bdist_dumb(filename: str) -> None:
    """A version that extends the form's as PEP 440 does is a version mismatch, not a format."""
    parsed = form(filetype=["sdist"], pyversion=["source"])
    assert "has version" in refused(lambda: check_file_upload(parsed, filename))


@pytest.mark.parametrize(
    ("filetype", "filename", "expected"),
    [
        ("sdist", "my_pkg-1.0-py3-none-any.whl", "does not match"),
        ("bdist_wheel", "my_pkg-1.0.tar.gz", "does not match"),
        ("bdist_egg", "my_pkg-1.0.tar.gz", "unsupported filetype"),
        ("bdist_wininst", "my_pkg-1.0-py3-none-any.whl", "unsupported filetype"),
    ],
)
def test_filetype_mismatch(filetype: str, filename: str, expected: str) -> None:
    """A filetype that is unknown or disagrees with the extension: 400."""
    parsed = form(filetype=[filetype], pyversion=["source"])
    assert expected in refused(lambda: check_file_upload(parsed, filename))


def test_sdist_with_python_tag() -> None:
    """An sdist with pyversion=py3: 400; empty is taken as source."""
    parsed = form(filetype=["sdist"], pyversion=["py3"])
    assert "pyversion 'py3'" in refused(lambda: check_file_upload(parsed, "my_pkg-1.0.tar.gz"))
    lenient = form(filetype=["sdist"], pyversion=[""])
    assert check_file_upload(lenient, "my_pkg-1.0.tar.gz")[2] == "sdist"


def test_wheel_without_pyversion() -> None:
    """A wheel without pyversion is accepted: its python tag is in its name."""
    assert check_file_upload(form(pyversion=[]), "my_pkg-1.0-py3-none-any.whl")[0] == "my-pkg"


@pytest.mark.parametrize(
    "filename", ["other_pkg-1.0-py3-none-any.whl", "my_pkg_two-1.0.tar.gz", "mypkg-1.0.tar.gz"]
)
def test_filename_for_another_project(filename: str) -> None:
    """A file for another project: 400 naming both projects."""
    parsed = form(filetype=[], pyversion=[])
    message = refused(lambda: check_file_upload(parsed, filename))
    assert "is for project" in message
    assert "'my-pkg'" in message


@pytest.mark.parametrize(
    "filename", ["my_pkg-1.1-py3-none-any.whl", "my_pkg-1.0.1.tar.gz", "my_pkg-1.0-x.tar.gz"]
)
def test_filename_for_another_version(filename: str) -> None:
    """A file for another version: 400 naming both versions."""
    parsed = form(filetype=[], pyversion=[])
    message = refused(lambda: check_file_upload(parsed, filename))
    assert "has version" in message
    assert "'1.0'" in message


@pytest.mark.parametrize("filename", ["my_pkg-1.0.whl", "my_pkg-py3-none-any.whl", "my_pkg.zip"])
def test_filename_without_version(filename: str) -> None:
    """A wheel name with the wrong number of parts, or an sdist name without version: 400."""
    parsed = form(filetype=[], pyversion=[])
    assert "invalid filename" in refused(lambda: check_file_upload(parsed, filename))


# -- check_artifact_metadata --------------------------------------------------------------------


def test_artifact_metadata(tmp_path: Path) -> None:
    """The factory wheel's METADATA matches its twine form; the parsed fields come back."""
    wheel: Dist = build_wheel(tmp_path, "my_pkg", "1.0", requires_dist=["a", "b"])
    fields = check_artifact_metadata(form(), wheel.filename, wheel.metadata)
    assert fields["name"] == "my_pkg"
    assert fields["version"] == "1.0"
    assert fields["requires_dist"] == ["a", "b"]


def test_artifact_version_matches_canonically() -> None:
    """Metadata version 1.0.0 matches a form saying 1.0."""
    data = METADATA.replace(b"Version: 1.0\n", b"Version: 1.0.0\n")
    assert check_artifact_metadata(form(), "f.whl", data)["version"] == "1.0.0"


def test_artifact_non_ascii_metadata() -> None:
    """UTF-8 metadata comes back as text, not as surrogate escapes."""
    data = METADATA + "Author: José Müller\n\nDescription: ünïcode\n".encode()
    fields = check_artifact_metadata(form(), "f.whl", data)
    assert fields["author"] == "José Müller"
    assert fields["description"] == "Description: ünïcode\n"


def test_unreadable_artifact() -> None:
    """No metadata could be read from the file: 400 naming it."""
    message = refused(lambda: check_artifact_metadata(form(), "my_pkg-1.0.tar.gz", None))
    assert message == "cannot read metadata from my_pkg-1.0.tar.gz"


def test_artifact_not_utf8() -> None:
    """Metadata that is not UTF-8: 400."""
    data = METADATA + b"Author: Jos\xe9\n"
    assert "UTF-8" in refused(lambda: check_artifact_metadata(form(), "f.whl", data))


@pytest.mark.parametrize(
    ("line", "header"),
    [
        (b"Metadata-Version: 2.1\n", "Metadata-Version"),
        (b"Name: My_Pkg\n", "Name"),
        (b"Version: 1.0\n", "Version"),
    ],
)
def test_artifact_missing_field(line: bytes, header: str) -> None:
    """Metadata without Metadata-Version, Name or Version: 400 naming the header."""
    data = METADATA.replace(line, b"")
    assert f"no {header} field" in refused(lambda: check_artifact_metadata(form(), "f.whl", data))
    blank = METADATA.replace(line, line.split(b":")[0] + b":  \n")
    assert f"no {header} field" in refused(lambda: check_artifact_metadata(form(), "f.whl", blank))


def test_artifact_for_another_project() -> None:
    """Metadata naming another project than the form: 400 naming both."""
    data = METADATA.replace(b"My_Pkg", b"Other")
    message = refused(lambda: check_artifact_metadata(form(), "f.whl", data))
    assert "'Other'" in message
    assert "'my-pkg'" in message


def test_artifact_for_another_version() -> None:
    """Metadata with another version than the form: 400 naming both."""
    data = METADATA.replace(b"Version: 1.0\n", b"Version: 1.0.1\n")
    message = refused(lambda: check_artifact_metadata(form(), "f.whl", data))
    assert "'1.0.1'" in message
    assert "'1.0'" in message


def test_digest_may_be_omitted_only_when_not_required() -> None:
    """devpi-client sends no digest: accepted with required=False; a wrong digest never is."""
    data = b"file bytes"
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    blake = hashlib.blake2b(data, digest_size=32).hexdigest()
    Digests(None, None, None).verify(md5, sha256, blake, required=False)
    with pytest.raises(UploadError, match="no digest"):
        Digests(None, None, None).verify(md5, sha256, blake)
    with pytest.raises(UploadError, match="does not match"):
        Digests(None, "0" * 64, None).verify(md5, sha256, blake, required=False)


@pytest.mark.parametrize("volatile", [True, False])
def test_existing_file_new_or_identical(volatile: bool) -> None:
    """No file of that name: new; the same bytes: identical, whatever the index's volatility."""
    check = check_existing_file
    assert check("p-1.0.tar.gz", "a" * 64, None, volatile=volatile, index_name="u/i") == "new"
    same = check("p-1.0.tar.gz", "a" * 64, "a" * 64, volatile=volatile, index_name="u/i")
    assert same == "identical"


def test_existing_file_other_bytes() -> None:
    """Other bytes: a volatile index replaces the file, a non-volatile one refuses with 409."""
    other = ("p-1.0.tar.gz", "a" * 64, "b" * 64)
    assert check_existing_file(*other, volatile=True, index_name="u/i") == "replace"
    with pytest.raises(FileExists) as refused:
        check_existing_file(*other, volatile=False, index_name="u/i")
    assert refused.value.message.startswith("File already exists: p-1.0.tar.gz")
    assert "non-volatile index u/i" in refused.value.message
