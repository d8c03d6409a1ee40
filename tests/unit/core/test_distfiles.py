"""Distribution file names: kinds, project/version parsing, safety and version ordering."""

from __future__ import annotations

import pytest

from cheeseboard.core.distfiles import (
    DistFilename,
    canonical_version,
    is_safe_filename,
    packagetype_of,
    parse_dist_filename,
    version_sort_key,
)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("foo-1.0-py3-none-any.whl", ("foo", "1.0", "bdist_wheel", "py3")),
        ("My_Pkg-2.0-py2.py3-none-any.whl", ("my-pkg", "2.0", "bdist_wheel", "py2.py3")),
        (
            "foo-1.0-1build-cp311-cp311-manylinux_2_17_x86_64.whl",
            ("foo", "1.0", "bdist_wheel", "cp311"),
        ),
        (
            "torch-2.0.0+cpu-cp311-cp311-linux_x86_64.whl",
            ("torch", "2.0.0+cpu", "bdist_wheel", "cp311"),
        ),
        ("FOO-1.0-PY3-NONE-ANY.WHL", ("foo", "1.0", "bdist_wheel", "PY3")),
        ("broken-1.0.whl", ("broken", None, "bdist_wheel", "")),
    ],
)
def test_wheel_names(filename: str, expected: tuple[str, str | None, str, str]) -> None:
    """Wheels split into name, version and python tag, with or without a build tag."""
    parsed = parse_dist_filename(filename)
    assert (parsed.project, parsed.version, parsed.packagetype, parsed.python_tag) == expected
    assert parsed.filename == filename


@pytest.mark.parametrize(
    ("filename", "project", "version"),
    [
        ("foo-1.0.tar.gz", "foo", "1.0"),
        ("foo-bar-1.0.tar.gz", "foo-bar", "1.0"),
        ("foo_bar-1.0.zip", "foo-bar", "1.0"),
        ("zope.interface-5.4.0.tar.gz", "zope-interface", "5.4.0"),
        ("Foo-1.0.TAR.GZ", "foo", "1.0"),
        ("foo-1.0.tar.bz2", "foo", "1.0"),
        ("foo-1.0.tgz", "foo", "1.0"),
        ("foo-1.0.tar.xz", "foo", "1.0"),
        ("foo-1.0.tar", "foo", "1.0"),
        ("foo-1.0rc1.post2.dev3.tar.gz", "foo", "1.0rc1.post2.dev3"),
    ],
)
def test_sdist_names_without_project(filename: str, project: str, version: str) -> None:
    """Without a hint, sdists split at the last '-'."""
    assert parse_dist_filename(filename) == DistFilename(
        filename, project, version, "sdist", "source"
    )


@pytest.mark.parametrize(
    ("filename", "project", "version"),
    [
        ("foo-bar-1.0-2.tar.gz", "foo-bar", "1.0-2"),  # rpartition would say project foo-bar-1-0
        ("foo.bar-1.0.tar.gz", "Foo_Bar", "1.0"),
        ("foo_bar-1.0.tar.gz", "foo.bar", "1.0"),
        ("Foo-Bar-1.0.zip", "foo-bar", "1.0"),
        ("foo-1.0-beta.tar.gz", "foo", "1.0-beta"),
    ],
)
def test_sdist_names_with_project(filename: str, project: str, version: str) -> None:
    """The project name picks the split even when the version itself contains '-'."""
    parsed = parse_dist_filename(filename, project)
    assert parsed.project == project.lower().replace("_", "-").replace(".", "-")
    assert parsed.version == version
    assert parsed.packagetype == "sdist"


def test_sdist_with_unrelated_project_falls_back() -> None:
    """A project hint that does not prefix the name is ignored."""
    parsed = parse_dist_filename("other-2.0.tar.gz", "foo")
    assert (parsed.project, parsed.version) == ("other", "2.0")


@pytest.mark.parametrize(
    ("filename", "project", "version"),
    [("foo.tar.gz", "foo", None), ("foo-.tar.gz", "foo", None), ("-1.0.tar.gz", "-1-0", None)],
)
def test_sdist_names_without_version(filename: str, project: str, version: None) -> None:
    """Names with no version part parse with version None rather than failing."""
    parsed = parse_dist_filename(filename)
    assert (parsed.project, parsed.version) == (project, version)


@pytest.mark.parametrize(
    ("filename", "project", "version", "tag"),
    [
        ("foo-1.0-py2.7.egg", "foo", "1.0", "py2.7"),
        ("foo_bar-1.0-py2.7-linux-x86_64.egg", "foo-bar", "1.0", "py2.7"),
        ("Twisted-8.2.0.win32-py2.5.exe", "twisted", "8.2.0", "py2.5"),
        ("numpy-1.9.0.win-amd64-py2.7.msi", "numpy", "1.9.0", "py2.7"),
        ("foo-1.0-1.noarch.rpm", "foo", "1.0", ""),
        ("foo-1.0-macosx10.5.dmg", "foo", "1.0", ""),
        ("python-ldap-2.3.exe", "python-ldap", "2.3", ""),
        ("foo-latest.egg", "foo-latest", None, ""),
        ("weird.deb", "weird", None, ""),
    ],
)
def test_legacy_binary_names(filename: str, project: str, version: str | None, tag: str) -> None:
    """Eggs and installers: the version stops before python tags and platforms."""
    parsed = parse_dist_filename(filename)
    assert parsed == DistFilename(filename, project, version, "other", tag)


def test_legacy_binary_with_project_hint() -> None:
    """With a project hint, an egg's version is still cut at its python tag."""
    parsed = parse_dist_filename("zope.interface-3.5.1-py2.6-win32.egg", "zope-interface")
    assert (parsed.project, parsed.version, parsed.python_tag) == (
        "zope-interface",
        "3.5.1",
        "py2.6",
    )
    assert parse_dist_filename("foo-bar.egg", "foo").version is None


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("x-1.whl", "bdist_wheel"),
        ("x-1.WHL", "bdist_wheel"),
        ("x-1.tar.gz", "sdist"),
        ("x-1.zip", "sdist"),
        ("x-1.egg", "other"),
        ("x-1.exe", "other"),
        ("x-1.txt", "other"),
    ],
)
def test_packagetype_of(filename: str, kind: str) -> None:
    """The extension alone decides the package type."""
    assert packagetype_of(filename) == kind


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0-py3-none-any.whl",
        "foo-1.0.tar.gz",
        "Foo_Bar-1.0.ZIP",
        "torch-2.0.0+cpu-cp311-cp311-linux_x86_64.whl",
        "a!b~c-1.egg",
        "x" * 251 + ".whl",
    ],
)
def test_safe_filenames(filename: str) -> None:
    """Plain archive names are safe."""
    assert is_safe_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "../x.whl",
        "..whl",
        ".hidden.whl",
        "a/b.whl",
        "a\\b.whl",
        "a\x00.whl",
        "a b.whl",
        "a\n.whl",
        "a.whl\n",
        "a%2Fb.whl",
        "a:b.whl",
        "-x.whl",
        "foo-1.0.txt",
        "foo-1.0.whl.metadata",
        "foo-1.0.html",
        "foo",
        "x" * 252 + ".whl",
        "ü-1.0.whl",
    ],
)
def test_unsafe_filenames(filename: str) -> None:
    """Separators, control characters, traversal, odd suffixes and over-long names are refused."""
    assert not is_safe_filename(filename)


def test_version_sort_key_orders_pep440_and_puts_invalid_first() -> None:
    """PEP 440 order for valid versions (not text order); invalid ones first, by text."""
    versions = ["1.10", "1.9", "1.0.post1", "1.0", "1.0rc1", "1.0.dev1", "zzz", "2.0-bad!", "0.1"]
    assert sorted(versions, key=version_sort_key) == [
        "2.0-bad!",
        "zzz",
        "0.1",
        "1.0.dev1",
        "1.0rc1",
        "1.0",
        "1.0.post1",
        "1.9",
        "1.10",
    ]


def test_canonical_version() -> None:
    """Equal versions share a canonical form; unparsable ones are returned as given."""
    assert canonical_version("1.0.0") == canonical_version("1.0") == canonical_version("1")
    assert canonical_version("1.0RC1") == "1rc1"
    assert canonical_version("not a version") == "not a version"
