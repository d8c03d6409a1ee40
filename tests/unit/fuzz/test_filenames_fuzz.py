"""Fuzzing distribution file names: the tolerant parser never raises, the upload check raises
only UploadError, valid names round-trip, and nothing path-like is accepted."""

from __future__ import annotations

import os.path
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from cheeseboard.core.distfiles import (
    canonical_version,
    is_safe_filename,
    packagetype_of,
    parse_dist_filename,
    version_sort_key,
)
from cheeseboard.core.uploads import (
    FileExists,
    UploadError,
    UploadForm,
    check_file_upload,
    parse_upload_form,
)
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ, any_text, project_names, versions, wheel_tags

SUFFIXES = [".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".egg", ".exe", ".txt", ""]
filenames = st.one_of(
    any_text,
    st.builds(lambda stem, suffix: stem + suffix, any_text, st.sampled_from(SUFFIXES)),
)


def _form(name: str, version: str, filetype: str | None = None) -> UploadForm:
    fields = {":action": ["file_upload"], "name": [name], "version": [version]}
    if filetype:
        fields["filetype"] = [filetype]
    return parse_upload_form(fields)


def _assert_plain_name(filename: str) -> None:
    """What 'safe' promises: one printable ASCII path component that is not '.' or '..'."""
    assert os.path.basename(filename) == filename
    assert filename not in (".", "..")
    assert not any(char in filename for char in "/\\\0%")
    assert filename.isascii() and filename.isprintable() and " " not in filename
    assert 0 < len(filename) <= 255


@FUZZ
@given(filenames, st.none() | any_text)
@counted("filenames: parse_dist_filename (arbitrary)")
def test_parse_never_raises(filename: str, project: str | None) -> None:
    """Any upstream link parses without error: a kind, a normalized project, maybe a version."""
    parsed = parse_dist_filename(filename, project)
    assert parsed.filename == filename
    assert parsed.packagetype == packagetype_of(filename)
    assert parsed.project == canonicalize_name(parsed.project)
    if project is not None and parsed.packagetype != "bdist_wheel":
        # With a project given, it wins whenever the name starts with it.
        stem_start = filename[: len(project) + 1]
        if (
            canonicalize_name(stem_start[:-1]) == canonicalize_name(project)
            and stem_start[-1:] == "-"
        ):
            assert parsed.project == canonicalize_name(project)


@FUZZ
@given(filenames)
@counted("filenames: is_safe_filename (arbitrary)")
def test_safe_filenames_are_plain_names(filename: str) -> None:
    """A name the server accepts as safe is a single printable component with an archive suffix."""
    if is_safe_filename(filename):
        _assert_plain_name(filename)
        assert packagetype_of(filename) in ("bdist_wheel", "sdist", "other")


@FUZZ
@given(project_names, versions, wheel_tags, st.booleans())
@counted("filenames: wheel round trip")
def test_wheel_names_round_trip(
    name: str, version: str, tags: tuple[str, str, str], build: bool
) -> None:
    """A valid wheel name parses back to its project, version and python tag, as packaging's own
    parser reads it, and passes the upload check."""
    dist = re.sub(r"[-_.]+", "_", name)  # the escaping wheel names use (PEP 427)
    build_tag = "-1" if build else ""
    filename = f"{dist}-{version}{build_tag}-{tags[0]}-{tags[1]}-{tags[2]}.whl"
    parsed = parse_dist_filename(filename)
    reference = parse_wheel_filename(filename)
    assert (parsed.project, parsed.version) == (canonicalize_name(name), version)
    assert parsed.project == reference[0] and canonical_version(
        parsed.version
    ) == canonical_version(str(reference[1]))
    assert parsed.python_tag == tags[0] and parsed.packagetype == "bdist_wheel"
    assert is_safe_filename(filename)
    assert check_file_upload(_form(name, version), filename) == (
        canonicalize_name(name),
        version,
        "bdist_wheel",
    )


@FUZZ
@given(project_names, versions, st.sampled_from([".tar.gz", ".zip"]), st.booleans())
@counted("filenames: sdist round trip")
def test_sdist_names_round_trip(name: str, version: str, suffix: str, with_project: bool) -> None:
    """A valid sdist name parses back to its project and version, with or without the project."""
    filename = f"{name}-{version}{suffix}"
    parsed = parse_dist_filename(filename, name if with_project else None)
    assert (parsed.project, parsed.version, parsed.packagetype) == (
        canonicalize_name(name),
        version,
        "sdist",
    )
    if suffix == ".tar.gz":
        reference = parse_sdist_filename(filename)
        assert reference[0] == parsed.project
    assert check_file_upload(_form(name, version), filename)[:2] == (
        canonicalize_name(name),
        version,
    )


@FUZZ
@given(project_names, versions, filenames, st.sampled_from([None, "bdist_wheel", "sdist", "x"]))
@counted("filenames: check_file_upload (arbitrary)")
def test_upload_check_raises_only_upload_error(
    name: str, version: str, filename: str, filetype: str | None
) -> None:
    """Whatever the file is called, the check accepts a plain name for this project and version,
    or refuses with a 400 UploadError whose message stays short."""
    try:
        project, accepted_version, kind = check_file_upload(
            _form(name, version, filetype), filename
        )
    except UploadError as exc:
        assert not isinstance(exc, FileExists)
        assert len(exc.message) < 600
        return
    _assert_plain_name(filename)
    assert project == canonicalize_name(name)
    assert canonical_version(
        parse_dist_filename(filename, name).version or ""
    ) == canonical_version(accepted_version)
    assert kind in ("bdist_wheel", "sdist")


@pytest.mark.parametrize(
    "filename",
    [
        "../pkg-1.0.tar.gz",
        "a/pkg-1.0.tar.gz",
        "pkg-1.0.tar.gz\0.txt",
        "..\\pkg-1.0.tar.gz",
        "pkg-1.0.tar.gz/",
        "pkg-1.0\n.tar.gz",
        ".pkg-1.0.tar.gz",
        "pkg-1.0.tar.gz\x7f",
        "%2e%2e%2fpkg-1.0.tar.gz",
        "pkg-" + "1" * 300 + ".tar.gz",
    ],
)
def test_path_like_upload_names_are_refused(filename: str) -> None:
    """The names the property must refuse are refused, with a 400."""
    with pytest.raises(UploadError) as refused:
        check_file_upload(_form("pkg", "1.0"), filename)
    assert not isinstance(refused.value, FileExists)


@FUZZ
@given(st.one_of(any_text, st.integers(4300, 6000).map(lambda n: "1" * n + ".0")))
@counted("filenames: versions (arbitrary)")
def test_version_helpers_never_raise(version: str) -> None:
    """Version strings from URLs, forms and upstream links never make the helpers raise, even
    with more digits than int() converts (packaging lets that ValueError through)."""
    canonical = canonical_version(version)
    assert isinstance(canonical, str)
    rank, _ = version_sort_key(version)
    assert rank in (0, 1)
