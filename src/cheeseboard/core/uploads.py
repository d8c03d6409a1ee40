"""Validation of legacy uploads (``POST /legacy``): the form, the file name and the metadata.

Pure functions, in the order the upload route calls them: ``parse_upload_form`` on the non-file
multipart fields, ``Digests.verify`` once the file is hashed, ``check_file_upload`` on its name,
``check_artifact_metadata`` on the METADATA/PKG-INFO read from it and ``check_existing_file``
against what the index already holds under that name. Each refusal is an
``UploadError`` with a message meant for the uploader (``FileExists`` for other bytes under a
taken name on a non-volatile index); the HTTP layer picks their status codes. The field list
follows the legacy API as twine, uv, poetry, pdm and hatch send it (docs/standards.md §1.12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cheeseboard.core.distfiles import (
    canonical_version,
    is_pep440_version,
    is_safe_filename,
    packagetype_of,
    parse_dist_filename,
)
from cheeseboard.core.metadata import parse_core_metadata
from cheeseboard.core.names import is_valid_project_name, normalize_project_name

ACTIONS = frozenset({"file_upload", "doc_upload", "submit"})
FILETYPES = frozenset({"bdist_wheel", "sdist"})
# The setuptools/distutils formats devpi still takes and cheeseboard refuses (README, "devpi
# compatibility"): no installer in use installs them (pip never installed eggs or bdist_dumb
# archives; easy_install is gone), PyPI stopped taking them (PEP 527; eggs in 2023), and a
# bdist_dumb archive is named like an sdist of a version that does not exist.
_LEGACY_SUFFIXES = {
    ".egg": "bdist_egg",
    ".exe": "bdist_wininst",
    ".msi": "bdist_msi",
    ".rpm": "bdist_rpm",
    ".dmg": "bdist_dmg",
}
_LEGACY_FILETYPES = frozenset({*_LEGACY_SUFFIXES.values(), "bdist_dumb"})
# Fields with a meaning of their own; every other field is project metadata. "content" is the
# file part and "gpg_signature" is ignored, as on PyPI since 2023; neither is metadata.
_PROTOCOL_FIELDS = frozenset(
    {
        ":action",
        "protocol_version",
        "name",
        "version",
        "filetype",
        "pyversion",
        "metadata_version",
        "md5_digest",
        "sha256_digest",
        "blake2_256_digest",
        "comment",
        "attestations",
        "gpg_signature",
        "content",
    }
)
_MAX_SHOWN = 100  # characters of client input quoted back in a message


class UploadError(Exception):
    """Raised when an upload is refused as invalid; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileExists(UploadError):
    """Raised when a non-volatile index already holds other bytes under the file's name."""


def _shown(value: str) -> str:
    """``value`` quoted for a message, cut short so a huge field is not echoed back whole."""
    shown = repr(value[: _MAX_SHOWN + 1])  # escapes make the repr up to 10 times longer
    return shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "…"


@dataclass(frozen=True, slots=True)
class Digests:
    """The hex digests the client sent (lowercase), None for each one it left out."""

    md5: str | None
    sha256: str | None
    blake2_256: str | None

    def verify(self, md5: str, sha256: str, blake2_256: str, *, required: bool = True) -> None:
        """Check each sent digest against the file's; refuse if one differs, or if none was
        sent while ``required`` (devpi-client's form has no digest field at all)."""
        pairs = (
            ("md5_digest", self.md5, md5),
            ("sha256_digest", self.sha256, sha256),
            ("blake2_256_digest", self.blake2_256, blake2_256),
        )
        if required and all(sent is None for _, sent, _ in pairs):
            raise UploadError(
                "no digest: send sha256_digest (or md5_digest or blake2_256_digest) with the file"
            )
        for field, sent, actual in pairs:
            if sent is not None and sent != actual.lower():
                raise UploadError(
                    f"{field} {_shown(sent)} does not match the uploaded file, whose digest is "
                    f"{actual.lower()!r}: the file was changed or cut short on the way"
                )


@dataclass(frozen=True)
class UploadForm:
    """The fields of an upload form, checked and split by meaning.

    ``name`` and ``version`` are as sent (never empty for ``file_upload``; "" when a ``doc_upload``
    or ``submit`` left them out). ``metadata`` holds every other non-empty field, repeated values
    in the order they came.
    """

    action: str
    name: str
    version: str
    filetype: str | None
    pyversion: str | None
    metadata_version: str | None
    digests: Digests
    metadata: Mapping[str, tuple[str, ...]]
    comment: str | None
    attestations: str | None


def _values(fields: Mapping[str, Sequence[str]], key: str) -> tuple[str, ...]:
    """The non-empty values of ``key``; a lone string counts as one value, not as characters."""
    raw = fields.get(key, ())
    values = (raw,) if isinstance(raw, str) else tuple(raw)
    return tuple(value for value in values if value != "")


def _single(fields: Mapping[str, Sequence[str]], key: str) -> str | None:
    """A single-valued field: None if absent or empty; 400 if sent twice with different values."""
    values = _values(fields, key)
    if not values:
        return None
    if any(value != values[0] for value in values[1:]):
        raise UploadError(f"{key} was sent more than once with different values")
    return values[0]


def _check_version(version: str) -> None:
    # packaging ignores surrounding whitespace, but the string is stored and shown as sent.
    if version == version.strip() and is_pep440_version(version):
        return
    raise UploadError(f"invalid version {_shown(version)}: it is not a PEP 440 version")


def _digest(fields: Mapping[str, Sequence[str]], key: str) -> str | None:
    value = _single(fields, key)
    return value.strip().lower() if value is not None else None


def parse_upload_form(
    fields: Mapping[str, Sequence[str]], query_action: str | None = None
) -> UploadForm:
    """Check the non-file fields of an upload; ``query_action`` is ``:action`` from the URL.

    The form's ``:action`` wins over the query's. ``name`` is required for file and doc uploads,
    ``version`` for file uploads; when sent, both must be valid. ``submit`` (poetry's registration
    retry) needs neither: the route answers it with 200 and stores nothing.
    """
    action = _single(fields, ":action") or query_action or None
    if action is None:
        raise UploadError("missing :action (use :action=file_upload)")
    if action not in ACTIONS:
        raise UploadError(
            f"unsupported :action {_shown(action)}: use file_upload, doc_upload or submit"
        )
    protocol = _single(fields, "protocol_version")
    if protocol is not None and protocol != "1":
        raise UploadError(
            f"unsupported protocol_version {_shown(protocol)}: only version 1 is supported"
        )
    name = _single(fields, "name") or ""
    version = _single(fields, "version") or ""
    if not name and action != "submit":
        raise UploadError(f"missing name: {action} needs the project name")
    if not version and action == "file_upload":
        raise UploadError("missing version: file_upload needs the release version")
    if name and not is_valid_project_name(name):
        raise UploadError(f"invalid project name {_shown(name)} (PEP 508)")
    if version:
        _check_version(version)
    metadata = {
        key: values
        for key in fields
        if key not in _PROTOCOL_FIELDS and (values := _values(fields, key))
    }
    return UploadForm(
        action=action,
        name=name,
        version=version,
        filetype=_single(fields, "filetype"),
        pyversion=_single(fields, "pyversion"),
        metadata_version=_single(fields, "metadata_version"),
        digests=Digests(
            md5=_digest(fields, "md5_digest"),
            sha256=_digest(fields, "sha256_digest"),
            blake2_256=_digest(fields, "blake2_256_digest"),
        ),
        metadata=metadata,
        comment=_single(fields, "comment"),
        attestations=_single(fields, "attestations"),
    )


def check_file_upload(form: UploadForm, filename: str) -> tuple[str, str, str]:
    """Check the uploaded file's name against the form; return (project, version, packagetype).

    ``project`` is normalized and ``version`` is the form's, as sent. The name part matches by
    normalization (wheels write ``my_pkg`` for ``my-pkg``), the version canonically (1.0 == 1.0.0).
    """
    if not filename or any(char in filename for char in "/\\\0"):
        raise UploadError(
            f"invalid filename {_shown(filename)}: send the bare file name, without '/', '\\' "
            "or NUL"
        )
    if not is_safe_filename(filename):
        raise UploadError(
            f"invalid filename {_shown(filename)}: expected a distribution file name such as "
            "name-1.0.tar.gz or name-1.0-py3-none-any.whl"
        )
    kind = packagetype_of(filename)
    legacy = _legacy_format(form, filename, kind)
    if legacy is not None:
        raise UploadError(
            f"unsupported file {_shown(filename)}: {legacy} is a legacy format cheeseboard does "
            "not accept (no installer in use installs it, and PyPI refuses it too); build a "
            "wheel (python -m build) and upload that"
        )
    if kind == "other":
        raise UploadError(
            f"unsupported file {_shown(filename)}: upload a wheel (.whl) or an sdist (.tar.gz)"
        )
    filetype = form.filetype or kind
    if filetype in _LEGACY_FILETYPES:
        raise UploadError(
            f"unsupported filetype {_shown(filetype)}: {filetype} is a legacy format cheeseboard "
            "does not accept; use bdist_wheel or sdist"
        )
    if filetype not in FILETYPES:
        raise UploadError(f"unsupported filetype {_shown(filetype)}: use bdist_wheel or sdist")
    if filetype != kind:
        raise UploadError(
            f"filetype {filetype!r} does not match {filename!r}, which is a "
            + ("wheel (bdist_wheel)" if kind == "bdist_wheel" else "source distribution (sdist)")
        )
    # A wheel's python tag is in its name, which is what installers read; clients copy it into
    # pyversion, so it is not checked again.
    if kind == "sdist" and form.pyversion not in (None, "source"):
        raise UploadError(
            f"pyversion {_shown(form.pyversion or '')} is not valid for an sdist: use 'source'"
        )
    parsed = parse_dist_filename(filename, project=form.name)
    if parsed.version is None:
        expected = (
            "name-version-python-abi-platform.whl" if kind == "bdist_wheel" else "name-version"
        )
        raise UploadError(f"invalid filename {filename!r}: expected {expected}")
    project = normalize_project_name(form.name)
    if parsed.project != project:
        raise UploadError(
            f"filename {filename!r} is for project {parsed.project!r}, but the form names "
            f"project {_shown(form.name)}"
        )
    if canonical_version(parsed.version) != canonical_version(form.version):
        raise UploadError(
            f"filename {filename!r} has version {parsed.version!r}, but the form says version "
            f"{_shown(form.version)}"
        )
    return project, form.version, kind


def _legacy_format(form: UploadForm, filename: str, kind: str) -> str | None:
    """The legacy format ``filename`` is in (``bdist_egg``, ``bdist_dumb``, …), else None.

    A bdist_dumb archive is ``name-1.0.linux-x86_64.tar.gz``: an sdist's suffix, and the form's
    version followed by a platform where an sdist's name ends (devpi-client sends it as an sdist).
    """
    lower = filename.lower()
    for suffix, name in _LEGACY_SUFFIXES.items():
        if lower.endswith(suffix):
            return name
    if form.filetype == "bdist_dumb":
        return "bdist_dumb"
    if kind != "sdist":
        return None
    version = parse_dist_filename(filename, project=form.name).version or ""
    tail = version.removeprefix(f"{form.version}.")
    if tail != version and tail[:1].isalpha() and not is_pep440_version(version):
        return "bdist_dumb"
    return None


def check_artifact_metadata(
    form: UploadForm, filename: str, metadata: bytes | None
) -> dict[str, Any]:
    """Check the METADATA/PKG-INFO read from the file against the form; return its fields.

    The fields are ``parse_core_metadata``'s: single ones str or None, repeated ones lists.

    The artifact is what installers see, so its name and version must be the form's (by
    normalization and canonically). ``metadata`` None means the archive held no readable one.
    """
    if metadata is None:
        raise UploadError(f"cannot read metadata from {filename}")
    try:
        metadata.decode("utf-8")
    except UnicodeDecodeError:
        # Core metadata is UTF-8 (PyPA core metadata specification).
        raise UploadError(f"the metadata in {filename} is not valid UTF-8") from None
    fields = parse_core_metadata(metadata)
    for key, header in (
        ("metadata_version", "Metadata-Version"),
        ("name", "Name"),
        ("version", "Version"),
    ):
        if not (fields[key] or "").strip():
            raise UploadError(f"the metadata in {filename} has no {header} field")
    name = str(fields["name"]).strip()
    version = str(fields["version"]).strip()
    if normalize_project_name(name) != normalize_project_name(form.name):
        raise UploadError(
            f"the metadata in {filename} is for project {_shown(name)}, but the form names "
            f"project {_shown(form.name)}"
        )
    if canonical_version(version) != canonical_version(form.version):
        raise UploadError(
            f"the metadata in {filename} has version {_shown(version)}, but the form says "
            f"version {_shown(form.version)}"
        )
    return fields


# What storing a file whose name the index may already hold does: "new" (no such file yet),
# "identical" (same bytes: nothing to write), "replace" (other bytes on a volatile index).
Existing = Literal["new", "identical", "replace"]


def check_existing_file(
    filename: str,
    sha256: str,
    existing_sha256: str | None,
    *,
    volatile: bool,
    index_name: str,
) -> Existing:
    """Decide an upload of ``filename`` (bytes hashing to ``sha256``) against the index's file of
    that name (``existing_sha256``, None if there is none). A non-volatile index never changes
    a file's bytes: other bytes are refused with 409 "File already exists" (twine's
    ``--skip-existing`` looks for it); a volatile one lets the last upload win.

    The answer is only true inside the write transaction that stores the file: checked before,
    eight concurrent uploads of one name all saw "new" and all were stored (issue 17, item 7).
    """
    if existing_sha256 is None:
        return "new"
    if existing_sha256 == sha256:
        return "identical"
    if volatile:
        return "replace"
    raise FileExists(
        f"File already exists: {filename} with different content is already on non-volatile "
        f"index {index_name}"
    )
