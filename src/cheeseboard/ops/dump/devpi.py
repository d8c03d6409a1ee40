"""Import of devpi-server export directories (``devpi-export DIR``, dumpversion 1 and 2).

devpi writes users, index configs and version metadata as one JSON document,
``DIR/dataindex.json``, and every file beside it (``user/index/project/version/name``, doc zips as
``user/index/project-version.doc.zip``). ``DevpiExport`` reads that as the record stream of
ops/dump/format.py, so one importer loads both kinds of dump and its guarantees (nothing written on
error, hashes checked while copying) hold for devpi too.

Every file is read only if it is a regular file inside the export reached without a link
(ops/dump/format.py ``contained_file``): a link to a local file (the data directory's
``secret``, say) would otherwise become a release file anyone can download.

What devpi knew is kept: password hashes (argon2 as they are, the legacy salted sha256 in the form
services/users.py checks), index configs (bases, ACLs, whitelists, mirror settings), each file's
sha256 (so its ``+f/<h[:3]>/<h[3:16]>/<name>`` URL stays the same), doc zips, upload times and
uploaders, and tox results (under devpi's names, so at the same URLs; one that is not a JSON
object of at most 1 MiB is skipped with a warning).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cheeseboard.archives.wheels import extract_wheel_metadata
from cheeseboard.core.distfiles import (
    canonical_version,
    is_safe_filename,
    packagetype_of,
    parse_dist_filename,
)
from cheeseboard.core.indexconfig import (
    INDEX_TYPES,
    MIRROR_DROPPED_KEYS,
    MIRROR_KEYS,
    STAGE_KEYS,
    ConfigError,
    new_index_config,
)
from cheeseboard.core.names import (
    InvalidName,
    checked_project_name,
    checked_segment_name,
    normalize_project_name,
)
from cheeseboard.ops.dump.format import DumpError, contained_file
from cheeseboard.services import toxresults
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.indexes import DEFAULT_MIRROR_URL
from cheeseboard.services.users import devpi_salted_hash, pwhash_problem

DATAINDEX = "dataindex.json"
DUMPVERSIONS = ("1", "2")
Warn = Callable[[str], None]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")
_CHUNK = 1024 * 1024
_RELEASE, _DOC, _TOX = "releasefile", "doczip", "toxresult"
_UPLOAD_TIME = "%Y-%m-%dT%H:%M:%S.000000Z"  # as services/uploads.py writes it
# devpi version data -> cheeseboard release metadata (parse_core_metadata's keys).
_SINGLE = (
    "name",
    "version",
    "summary",
    "home_page",
    "download_url",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license",
    "license_expression",
    "keywords",
    "requires_python",
    "description_content_type",
    "metadata_version",
    "description",
)
_LISTS = {
    "classifiers": "classifiers",
    "platform": "platform",
    "requires_dist": "requires_dist",
    "provides_extras": "provides_extra",
    "provides_dist": "provides_dist",
    "obsoletes_dist": "obsoletes_dist",
    "requires_external": "requires_external",
    "dynamic": "dynamic",
    "license_file": "license_files",
}
# Index settings of old devpi versions or plugins that mean nothing here when they are empty.
_EMPTY_IS_ABSENT = ("uploadtrigger_jenkins",)


def _stderr(message: str) -> None:
    sys.stderr.write(f"cheeseboard-server: warning: {message}\n")


@dataclass
class _File:
    index: str
    project: str  # normalized
    version: str
    doc: bool
    filename: str
    relpath: str
    path: Path
    sha256: str
    size: int
    upstream_url: str | None
    uploaded: float | None  # first upload (devpi's log), else the file's last_modified
    uploaded_by: str | None

    @property
    def where(self) -> str:
        return f"{DATAINDEX}: index {self.index}: file {self.relpath}"


@dataclass
class _Project:
    display_name: str
    versions: dict[str, dict[str, Any]]  # version -> devpi version data
    files: list[_File] = field(default_factory=list)


@dataclass
class _Tox:
    """A tox result (``devpi test``) of a release file, kept under devpi's name (the same URL)."""

    release: str  # the release file's name
    name: str  # <release>.toxresult-<time>-<n>
    data: str
    uploaded: float | None
    uploaded_by: str | None
    where: str


@dataclass
class _Index:
    name: str
    type: str
    config: dict[str, object]
    projects: dict[str, _Project]
    toxresults: list[_Tox] = field(default_factory=list)


class DevpiExport:
    """A ``devpi-export`` directory as a DumpSource (see ops/dump/importer.py)."""

    def __init__(self, root: Path, warn: Warn = _stderr) -> None:
        self.root = root
        self.name = str(root)
        self.serial = 0  # devpi's serials count its own key-value changes: nothing to continue
        self.warnings: list[str] = []
        self._warn = warn
        self._users: list[dict[str, Any]] | None = None
        self._indexes: list[_Index] = []
        self._blob_paths: dict[str, Path] = {}
        self._blob_sizes: dict[str, tuple[int, str]] = {}
        self._core_metadata: dict[str, str] = {}  # relpath -> sha256 of the wheel's METADATA
        self._emitted: set[str] = set()  # blobs yielded by the current records() pass
        self._scratch: Path | None = None  # wheels' METADATA during records()
        self._scratch_paths: dict[str, Path] = {}

    # --- DumpSource --------------------------------------------------------------------------

    def verify(self) -> None:
        """dataindex.json parses, its dumpversion is 1 or 2, every name and config converts,
        and every file it lists is there (files without a sha256 in the export are hashed)."""
        self._parse()

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        self._parse()
        assert self._users is not None
        self._emitted = set()
        try:
            for user in self._users:
                yield f"{DATAINDEX}: user {user['name']}", user
            for index in self._indexes:
                record = {"kind": "index", "name": index.name, "type": index.type}
                yield f"{DATAINDEX}: index {index.name}", {**record, "config": index.config}
            for index in self._indexes:
                yield from self._project_records(index)
            for index in self._indexes:
                if index.type == "stage":
                    yield from self._release_records(index)
            for index in self._indexes:
                yield from self._blob_records(index)
            for index in self._indexes:
                yield from self._file_records(index)
            for index in self._indexes:
                for tox in index.toxresults:
                    result: dict[str, Any] = {
                        "kind": "toxresult",
                        "index": index.name,
                        "filename": tox.release,
                        "name": tox.name,
                        "data": tox.data,
                        "uploaded_by": tox.uploaded_by,
                        "created": tox.uploaded,
                    }
                    yield f"{DATAINDEX}: {tox.where}", result
        finally:
            self._remove_scratch()  # every blob is copied before the first file record

    def blob_file(self, sha256: str) -> Path:
        path = self._blob_paths.get(sha256)
        if path is None:
            return self._scratch_paths[sha256]
        # Checked again right before the copy: the export may have changed since verify().
        return contained_file(self.root, path.relative_to(self.root).as_posix())

    # --- reading dataindex.json --------------------------------------------------------------

    def _error(self, where: str, message: str) -> DumpError:
        return DumpError(f"{self.name}: {DATAINDEX}: {where}: {message}")

    def _warning(self, message: str) -> None:
        self.warnings.append(message)
        self._warn(f"{self.name}: {message}")

    def _parse(self) -> None:
        if self._users is not None:
            return
        path = self.root / DATAINDEX
        try:
            with path.open("rb") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise DumpError(f"{self.name}: {DATAINDEX} is missing: not a devpi export") from None
        except (OSError, ValueError) as error:
            raise DumpError(
                f"{self.name}: {DATAINDEX} is not valid JSON ({error}): cut short or edited?"
            ) from None
        if not isinstance(data, dict):
            raise DumpError(f"{self.name}: {DATAINDEX} is not a devpi export (not an object)")
        dumpversion = str(data.get("dumpversion"))
        if dumpversion not in DUMPVERSIONS:
            raise DumpError(
                f"{self.name}: {DATAINDEX}: dumpversion {data.get('dumpversion')!r} is not "
                f"supported; cheeseboard reads devpi exports of dumpversion 1 and 2"
            )
        users, indexes = data.get("users"), data.get("indexes")
        if not isinstance(users, dict) or not isinstance(indexes, dict):
            raise DumpError(f"{self.name}: {DATAINDEX} has no 'users' and 'indexes' objects")
        self._indexes, self._blob_paths, self._blob_sizes = [], {}, {}  # a retry starts over
        parsed_users = [self._user(str(name), config) for name, config in users.items()]
        user_names, index_names = set(users), set(indexes)
        tox = 0
        for name, entry in indexes.items():
            index, skipped = self._index(str(name), entry, user_names, index_names, dumpversion)
            self._indexes.append(index)
            tox += skipped
        if tox:
            self._warning(
                f"skipped {tox} tox result file(s): not a JSON object of at most "
                f"{toxresults.MAX_SIZE} bytes, or not of a release file on a stage"
            )
        self._users = parsed_users

    def _user(self, name: str, config: object) -> dict[str, Any]:
        where = f"user {name}"
        if not isinstance(config, dict):
            raise self._error(where, "not a JSON object")
        try:
            checked_segment_name("user", name)
        except InvalidName as error:
            raise self._error(where, str(error)) from None
        record: dict[str, Any] = {
            "kind": "user",
            "name": name,
            "pwhash": self._pwhash(name, config),
        }
        for key in ("email", "title", "description"):
            if isinstance(config.get(key), str) and config[key]:
                record[key] = config[key]
        if config.get("custom_data") is not None:
            record["custom_data"] = config["custom_data"]
        for key in ("created", "modified"):
            stamp = _iso_time(config.get(key))
            if stamp is not None:
                record[key] = stamp
        return record

    def _pwhash(self, name: str, config: dict[str, Any]) -> str:
        pwhash, salt = config.get("pwhash"), config.get("pwsalt")
        if isinstance(pwhash, str) and pwhash.startswith("$argon2"):
            problem = pwhash_problem(pwhash)
            if problem is not None:
                raise self._error(f"user {name}", f"{problem}; set a new password on devpi")
            return pwhash
        if isinstance(pwhash, str) and isinstance(salt, str) and _legacy_hash(salt, pwhash):
            return devpi_salted_hash(salt, pwhash)
        kind = "no password hash" if not pwhash else "a password hash cheeseboard cannot check"
        raise self._error(
            f"user {name}",
            f"{kind}; set a new password on devpi (devpi-passwd {name}) and export again, or "
            "remove the user from the export",
        )

    def _index(
        self, name: str, entry: object, users: set[str], names: set[str], dumpversion: str
    ) -> tuple[_Index, int]:
        """The index and how many of its tox results cannot be kept (skipped)."""
        where = f"index {name}"
        owner, sep, short = name.partition("/")
        try:
            if not sep:
                raise InvalidName("an index name is 'user/index'")
            checked_segment_name("user", owner)
            checked_segment_name("index", short)
        except InvalidName as error:
            raise self._error(where, str(error)) from None
        if owner not in users:
            raise self._error(where, f"its user {owner!r} is not in the export")
        if not isinstance(entry, dict) or not isinstance(entry.get("indexconfig"), dict):
            raise self._error(where, "no 'indexconfig' object")
        config = self._config(name, dict(entry["indexconfig"]), names)
        index = _Index(name, str(config["type"]), config, {})
        for project, versions in _mapping(entry.get("projects"), self._error, where).items():
            self._add_project(index, str(project), versions)
        tox = 0
        files = entry.get("files") or []
        if not isinstance(files, list):
            raise self._error(where, "'files' is not a list")
        for number, desc in enumerate(files):
            if not isinstance(desc, dict):
                raise self._error(f"{where}: files[{number}]", "not a JSON object")
            if desc.get("type") == _TOX:
                tox += 0 if self._add_toxresult(index, desc, number) else 1
                continue
            self._add_file(index, desc, dumpversion, number)
        if index.type == "mirror":  # only what was cached has a place in a mirror
            index.projects = {k: p for k, p in index.projects.items() if p.files}
        return index, tox

    def _config(self, name: str, raw: dict[str, Any], names: set[str]) -> dict[str, object]:
        """devpi's ixconfig as cheeseboard stores it (core/indexconfig.py validates it)."""
        where = f"index {name}"
        index_type = raw.get("type", "stage")
        if index_type not in INDEX_TYPES:
            raise self._error(
                where,
                f"index type {index_type!r} (from a devpi plugin) is not supported; remove the "
                "index from the export or change its type",
            )
        if "pypi_whitelist" in raw:  # devpi < 3.0's name for it
            whitelist = raw.pop("pypi_whitelist")
            raw.setdefault("mirror_whitelist", whitelist)
        for key in _EMPTY_IS_ABSENT:
            if key in raw and not raw[key]:
                del raw[key]
        allowed = STAGE_KEYS if index_type == "stage" else MIRROR_KEYS | MIRROR_DROPPED_KEYS
        unknown = sorted(key for key in raw if key not in allowed)
        if unknown:
            self._warning(f"index {name}: dropped settings cheeseboard has no use for: {unknown}")
            for key in unknown:
                del raw[key]
        if index_type == "stage":
            # Configs from before devpi had the setting meant union.
            raw.setdefault("mirror_whitelist_inheritance", "union")
            raw["bases"] = self._bases(name, raw.get("bases", []), names)
        elif not raw.get("mirror_url"):
            self._warning(f"index {name}: mirror without mirror_url, using {DEFAULT_MIRROR_URL}")
            raw["mirror_url"] = DEFAULT_MIRROR_URL
        try:
            return new_index_config(name.partition("/")[0], raw, names.__contains__, fullname=name)
        except ConfigError as error:
            raise self._error(where, f"invalid index configuration: {error}") from None

    def _bases(self, name: str, bases: object, names: set[str]) -> list[str]:
        """The bases that exist in the export (devpi keeps dangling ones; they mean nothing)."""
        if isinstance(bases, str):
            bases = bases.split(",")
        if not isinstance(bases, list | tuple):
            raise self._error(f"index {name}", f"bases is not a list: {bases!r}")
        items = [str(base).strip() for base in bases if str(base).strip()]
        kept = [base for base in items if base in names and base != name]
        dropped = [base for base in items if base not in kept]
        if dropped:
            self._warning(f"index {name}: dropped bases missing from the export: {dropped}")
        return kept

    def _add_project(self, index: _Index, name: str, versions: object) -> None:
        where = f"index {index.name}: project {name}"
        project = self._project_name(where, name)
        known = index.projects.setdefault(project, _Project(name, {}))
        for version, data in _mapping(versions, self._error, where).items():
            if not isinstance(data, dict):
                raise self._error(f"{where}: version {version}", "not a JSON object")
            known.versions[str(version)] = data
            if isinstance(data.get("name"), str) and data["name"]:
                known.display_name = data["name"]

    def _project_name(self, where: str, name: str) -> str:
        try:
            return checked_project_name(name)
        except InvalidName as error:
            raise self._error(where, str(error)) from None

    def _add_file(self, index: _Index, desc: dict[str, Any], dumpversion: str, n: int) -> None:
        relpath = desc.get("relpath")
        kind = desc.get("type")
        if not isinstance(relpath, str) or not relpath:
            raise self._error(f"index {index.name}: files[{n}]", "no relpath")
        filename = PurePosixPath(relpath).name
        where = f"index {index.name}: file {filename}"
        parts = PurePosixPath(relpath).parts
        if PurePosixPath(relpath).is_absolute() or ".." in parts:
            raise self._error(where, f"relpath {relpath!r} points outside the export")
        if kind not in (_RELEASE, _DOC):
            raise self._error(where, f"unknown file type {kind!r}")
        if kind == _DOC and index.type != "stage":
            raise self._error(where, "a doc zip on a mirror index")
        if not is_safe_filename(filename):
            raise self._error(where, "not a file name cheeseboard can serve")
        raw_project = desc.get("projectname")
        if not isinstance(raw_project, str) or not raw_project:
            raise self._error(where, "no projectname")
        project = self._project_name(where, raw_project)
        version = desc.get("version")
        if not version and dumpversion == "1":  # version 1 dumps name it only in the filename
            version = _version_from_filename(filename, project, kind == _DOC)
        if not isinstance(version, str) or not version:
            raise self._error(where, "no version")
        try:
            path = contained_file(self.root, relpath)
        except DumpError as error:
            raise self._error(where, str(error)) from None
        mapping = desc.get("entrymapping") or {}
        if not isinstance(mapping, dict):
            raise self._error(where, "'entrymapping' is not an object")
        size = path.stat().st_size
        sha256 = self._sha256(where, relpath, path, mapping)
        seen = self._blob_sizes.setdefault(sha256, (size, relpath))
        if seen[0] != size:
            raise self._error(
                where,
                f"{relpath} is damaged: {size} bytes, but {seen[1]} has the same sha256 and "
                f"{seen[0]} bytes",
            )
        self._blob_paths.setdefault(sha256, path)
        log = desc.get("log")
        log = log if isinstance(log, list) else []
        uploaded = _first_upload(log)
        if uploaded is None:
            uploaded = _http_time(mapping.get("last_modified"))
        url = mapping.get("url")
        entry = index.projects.setdefault(project, _Project(raw_project, {}))
        entry.versions.setdefault(version, {"name": raw_project, "version": version})
        entry.files.append(
            _File(
                index=index.name,
                project=project,
                version=version,
                doc=kind == _DOC,
                filename=filename,
                relpath=relpath,
                path=path,
                sha256=sha256,
                size=size,
                upstream_url=url if isinstance(url, str) and index.type == "mirror" else None,
                uploaded=uploaded,
                uploaded_by=_last_uploader(log),
            )
        )

    def _add_toxresult(self, index: _Index, desc: dict[str, Any], n: int) -> bool:
        """Keep a tox result of a release file on a stage; False for one that cannot be kept
        (too large, not a JSON object): the caller counts those in one warning."""
        relpath, release = desc.get("relpath"), desc.get("for_entrypath")
        where = f"index {index.name}: files[{n}] (tox result)"
        if not isinstance(relpath, str) or not relpath or not isinstance(release, str):
            raise self._error(where, "no relpath or for_entrypath")
        try:
            path = contained_file(self.root, relpath)
        except DumpError as error:
            raise self._error(where, str(error)) from None
        name, release_name = PurePosixPath(relpath).name, PurePosixPath(release).name
        if (
            index.type != "stage"
            or len(name) > 255
            or not name.startswith(release_name + toxresults.MARKER)
            or path.stat().st_size > toxresults.MAX_SIZE
        ):
            return False
        raw = path.read_bytes()
        try:
            toxresults.parse(raw)
            data = raw.decode("utf-8")
        except (BadRequest, UnicodeDecodeError):
            return False
        log = desc.get("log")
        log = log if isinstance(log, list) else []
        index.toxresults.append(
            _Tox(release_name, name, data, _first_upload(log), _last_uploader(log), where)
        )
        return True

    def _sha256(self, where: str, relpath: str, path: Path, mapping: dict[str, Any]) -> str:
        """The file's sha256 as devpi recorded it; files exported without one are hashed here
        (and their md5, which devpi 2 recorded instead, is checked)."""
        hashes = dict(mapping["hashes"]) if isinstance(mapping.get("hashes"), dict) else {}
        spec = mapping.get("hash_spec")
        if isinstance(spec, str) and "=" in spec:
            kind, _, value = spec.partition("=")
            hashes = {kind: value, **hashes}
        if isinstance(mapping.get("md5"), str):
            hashes.setdefault("md5", mapping["md5"])
        recorded = str(hashes.get("sha256", "")).lower()
        if recorded:
            if not _SHA256.fullmatch(recorded):
                raise self._error(where, f"invalid sha256 {recorded!r}")
            return recorded
        sha256, md5 = _digests(path)
        expected = str(hashes.get("md5", "")).lower()
        if expected and _MD5.fullmatch(expected) and expected != md5:
            raise self._error(
                where, f"{relpath} is damaged: its md5 is {md5}, the export says {expected}"
            )
        return sha256

    # --- records -----------------------------------------------------------------------------

    def _project_records(self, index: _Index) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, project in index.projects.items():
            record: dict[str, Any] = {
                "kind": "project",
                "index": index.name,
                "name": name,
                "display_name": project.display_name,
                "found": True,
            }
            times = [f.uploaded for f in project.files if f.uploaded is not None]
            if times:
                record["created"] = min(times)
                if index.type == "mirror":
                    # When devpi last fetched from upstream: a refresh that fails serves these.
                    record["checked_at"] = max(times)
            yield f"{DATAINDEX}: index {index.name}: project {name}", record

    def _release_records(self, index: _Index) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, project in index.projects.items():
            for version, data in project.versions.items():
                number = str(data.get("version") or version)
                record: dict[str, Any] = {
                    "kind": "release",
                    "index": index.name,
                    "project": name,
                    "version": number,
                    "canonical_version": canonical_version(number),
                    "metadata": _metadata(data, project.display_name, number),
                }
                yanked = _yanked(data.get("yanked"))
                if yanked is not None:
                    record["yanked"] = yanked
                times = [
                    f.uploaded
                    for f in project.files
                    if f.uploaded is not None and f.version == version
                ]
                if times:
                    record["created"] = min(times)
                where = f"{DATAINDEX}: index {index.name}: project {name}: version {version}"
                yield where, record

    def _blob_records(self, index: _Index) -> Iterator[tuple[str, dict[str, Any]]]:
        for project in index.projects.values():
            for f in project.files:
                if f.sha256 not in self._emitted:
                    self._emitted.add(f.sha256)
                    yield f.where, {"kind": "blob", "sha256": f.sha256, "size": f.size}
                if index.type != "stage" or packagetype_of(f.filename) != "bdist_wheel":
                    continue
                metadata = extract_wheel_metadata(f.path)
                if metadata is None:
                    continue  # served by reading the wheel on demand, as for mirrors
                digest = hashlib.sha256(metadata).hexdigest()
                self._core_metadata[f.relpath] = digest
                if digest not in self._emitted:
                    self._emitted.add(digest)
                    self._scratch_paths[digest] = self._scratch_file(digest, metadata)
                    record = {"kind": "blob", "sha256": digest, "size": len(metadata)}
                    yield f"{f.where} (its METADATA)", record

    def _scratch_file(self, digest: str, data: bytes) -> Path:
        """A wheel's METADATA, written out for the importer to copy like any blob."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="cheeseboard-devpi-"))
            weakref.finalize(self, shutil.rmtree, self._scratch, True)
        path = self._scratch / digest
        path.write_bytes(data)
        return path

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self._scratch_paths.clear()

    def _file_records(self, index: _Index) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, project in index.projects.items():
            for position, f in enumerate(project.files):
                data = project.versions.get(f.version, {})
                requires_python = data.get("requires_python") or None
                record: dict[str, Any] = {
                    "kind": "file",
                    "index": index.name,
                    "project": name,
                    "filename": f.filename,
                    "version": str(data.get("version") or f.version),
                    "packagetype": "doczip" if f.doc else packagetype_of(f.filename),
                    "sha256": f.sha256,
                    "size": f.size,
                    "requires_python": None if f.doc else requires_python,
                    "yanked": None if f.doc else _yanked(data.get("yanked")),  # as its release
                    "upload_time": None,
                    "core_metadata_sha256": self._core_metadata.get(f.relpath),
                    "upstream_url": f.upstream_url,
                    "blob_sha256": f.sha256,
                    "position": position,
                    "uploaded_by": f.uploaded_by,
                }
                if f.uploaded is not None:
                    record["created"] = f.uploaded
                    if index.type == "stage":
                        record["upload_time"] = time.strftime(_UPLOAD_TIME, time.gmtime(f.uploaded))
                yield f.where, record


def _legacy_hash(salt: str, pwhash: str) -> bool:
    """devpi's pre-argon2 form: a hex sha256 over an ASCII (base64) salt and the password."""
    return bool(salt) and salt.isascii() and "$" not in salt and bool(_SHA256.fullmatch(pwhash))


def _mapping(value: object, error: Callable[[str, str], DumpError], where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(where, "expected a JSON object")
    return value


def _metadata(data: dict[str, Any], display_name: str, version: str) -> dict[str, Any]:
    """devpi's version data in the shape of core/metadata.py's ``parse_core_metadata``."""
    metadata: dict[str, Any] = {}
    for key in _SINGLE:
        value = data.get(key)
        metadata[key] = str(value) if value not in (None, "") else None
    for devpi_key, key in _LISTS.items():
        metadata[key] = [str(item) for item in _as_list(data.get(devpi_key))]
    metadata["project_urls"] = _project_urls(data.get("project_urls"))
    metadata["name"] = metadata["name"] or display_name
    metadata["version"] = version
    # Fields devpi keeps that core metadata has no place for (comment, supported_platform...).
    skip = {*_SINGLE, *_LISTS, "project_urls", "yanked"}
    for key, value in data.items():
        if key in skip or key.startswith(("+", ":")) or value in (None, "", [], {}):
            continue
        metadata[key] = value
    return metadata


def _as_list(value: object) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _project_urls(value: object) -> dict[str, str]:
    """devpi keeps ``["Label, url", ...]``; cheeseboard ``{label: url}``."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    urls: dict[str, str] = {}
    for entry in _as_list(value):
        label, _, url = str(entry).partition(",")
        if url.strip():
            urls[label.strip()] = url.strip()
    return urls


def _yanked(value: object) -> str | None:
    """PEP 592 as stored: None not yanked, "" yanked without a reason, else the reason."""
    if value in (None, False):
        return None
    if value is True:
        return ""
    return str(value)


def _version_from_filename(filename: str, project: str, doc: bool) -> str | None:
    """The version a dumpversion 1 export names only in the file name."""
    if not doc:
        return parse_dist_filename(filename, project).version
    stem = filename.removesuffix(".doc.zip")
    for index, char in enumerate(stem):
        if char == "-" and normalize_project_name(stem[:index]) == project:
            return stem[index + 1 :] or None
    return None


def _digests(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while data := handle.read(_CHUNK):
            sha256.update(data)
            md5.update(data)
    return sha256.hexdigest(), md5.hexdigest()


def _iso_time(value: object) -> float | None:
    """devpi's ``2024-01-02T03:04:05Z`` user timestamps as epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _http_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _log_time(entry: dict[str, Any]) -> float | None:
    when = entry.get("when")
    if not isinstance(when, list) or len(when) < 6:
        return None
    try:
        return float(calendar.timegm(tuple(int(part) for part in when[:6])))
    except (TypeError, ValueError, OverflowError):
        return None


def _first_upload(log: list[Any]) -> float | None:
    """When the file first arrived (devpi logs UTC ``[Y, M, D, h, m, s]``)."""
    for entry in log:
        if isinstance(entry, dict) and (stamp := _log_time(entry)) is not None:
            return stamp
    return None


def _last_uploader(log: list[Any]) -> str | None:
    """Who put the file on this index: the last upload or push in its log."""
    for entry in reversed(log):
        if isinstance(entry, dict) and isinstance(entry.get("who"), str) and entry["who"]:
            return str(entry["who"])
    return None
