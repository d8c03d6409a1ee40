"""``devpi push``: copy a release (files, metadata, doc zip) to another index.

Unlike devpi, which commits the files it managed before hitting a conflict, a push here checks
every file against the target first and then writes all of them in one transaction: it either
happens completely or not at all. Files are content-addressed, so nothing is copied but rows.

Who may push: an authenticated user who may upload to or manage the source index (a push
publishes its releases elsewhere, with this server's bandwidth), and for an internal target also
upload to it. An external target (``posturl``) must pass the outbound policy: loopback, private
and link-local addresses only when ``--push-allow`` lists the URL (mirror/outbound.py). The
target's answers are reduced to their status: its body is never shown to the caller.
"""

from __future__ import annotations

from typing import Any

from cheeseboard.core import acl
from cheeseboard.core.changes import ChangeKind
from cheeseboard.core.distfiles import canonical_version, parse_dist_filename
from cheeseboard.core.names import normalize_project_name
from cheeseboard.mirror.client import UpstreamClient
from cheeseboard.mirror.errors import UpstreamRefused, UpstreamUnavailable
from cheeseboard.mirror.outbound import OutboundPolicy, OutboundRefused, check_url
from cheeseboard.services.auth import Forbidden, Identity, Unauthorized
from cheeseboard.services.changes import ChangeFeed, Transaction
from cheeseboard.services.errors import BadRequest, CheeseboardError, NotFound
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.pages import PageService, file_path
from cheeseboard.services.upstream_names import refuse_upstream_name
from cheeseboard.store import project_rows, release_rows, toxresult_rows
from cheeseboard.store.blobs import BlobStore
from cheeseboard.store.db import Database
from cheeseboard.store.records import FileRecord, IndexRecord, NewFile, ReleaseRecord

_FILE_FIELDS = ("version", "packagetype", "sha256", "size", "requires_python", "yanked")


class PushConflict(CheeseboardError):
    """Raised when the target already has one of the files with different bytes."""


class PushFailed(CheeseboardError):
    """Raised when an external index refused a pushed file."""


def _form_fields(
    name: str, version: str, metadata: dict[str, Any], record: FileRecord
) -> list[tuple[str, str]]:
    """The legacy upload form for one file, metadata taken from the stored release."""
    if record.packagetype == "doczip":
        return [(":action", "doc_upload"), ("name", name), ("version", version)]
    python_tag = parse_dist_filename(record.filename, name).python_tag or "source"
    fields = [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("name", name),
        ("version", version),
        ("filetype", record.packagetype),
        ("pyversion", python_tag),
        ("sha256_digest", record.sha256 or ""),
    ]
    for key, value in metadata.items():
        if key in ("name", "version") or value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            fields += [(key, str(item)) for item in value]
        elif isinstance(value, dict):
            fields += [("project_urls", f"{label}, {url}") for label, url in value.items()]
        else:
            fields.append((key, str(value)))
    return fields


class PushService:
    """Copy releases between indexes of this server."""

    def __init__(
        self,
        db: Database,
        changes: ChangeFeed,
        indexes: IndexRegistry,
        blobs: BlobStore,
        client: UpstreamClient,
        pages: PageService,
        push_allow: tuple[str, ...] = (),
    ) -> None:
        self._db = db
        self._changes = changes
        self._indexes = indexes
        self._blobs = blobs
        self._client = client
        self._pages = pages
        self._policy = OutboundPolicy(push_allow, "--push-allow")

    async def push(
        self, identity: Identity, source: IndexRecord, request: dict[str, Any]
    ) -> list[list[Any]]:
        """Push ``name==version`` to ``targetindex``; returns devpi's action log."""
        name, version = request.get("name"), request.get("version")
        target_name = request.get("targetindex")
        _check_source(identity, source)
        if not isinstance(name, str) or not isinstance(version, str):
            raise BadRequest("push needs 'name' and 'version'")
        if not isinstance(target_name, str):
            if isinstance(request.get("posturl"), str):
                return await self._push_external(source, name, version, request)
            raise BadRequest("push needs 'targetindex' (user/index) or 'posturl'")
        user, _, index_name = target_name.partition("/")
        target = self._indexes.get(user, index_name)
        if target is None:
            raise NotFound(f"target index {target_name!r} does not exist")
        if target.type != "stage" or source.type != "stage":
            raise BadRequest("push works between stage indexes")
        decision = acl.may_upload(identity, target.config.get("acl_upload", ()))
        if not decision.allowed:
            if identity.anonymous:
                raise Unauthorized(f"pushing to {target.fullname} needs authentication")
            raise Forbidden(f"no permission to push to {target.fullname}: {decision.reason}")
        project = normalize_project_name(name)
        release, chosen = await self._release(source, name, version, request)
        if any(f.packagetype != "doczip" for f in chosen):
            # The dependency-confusion guard, as for an upload (a doc zip alone creates nothing).
            await refuse_upstream_name(self._db, self._pages, target, project)
        await self._check_conflicts(target, chosen)
        display = str(release.metadata.get("name") or name)
        tox = await self._changes.write(
            _store_push,
            target.id,
            project,
            display,
            release.version,
            release.metadata,
            chosen,
            identity.user,
        )
        log: list[list[Any]] = [[200, "register", display, release.version, "->", target.fullname]]
        for f in chosen:
            if f.packagetype == "doczip":
                log.append([200, "store_doczip", display, release.version, "->", target.fullname])
            else:
                log.append([200, "store_releasefile", file_path(target, f)])
                directory = file_path(target, f).rsplit("/", 1)[0]
                log.extend([200, "store_toxresult", f"{directory}/{n}"] for n in tox[f.filename])
        return log

    async def _release(
        self, source: IndexRecord, name: str, version: str, request: dict[str, Any]
    ) -> tuple[ReleaseRecord, list[FileRecord]]:
        project = normalize_project_name(name)
        record, releases, files = await self._db.read(
            release_rows.project_releases, source.id, project
        )
        wanted = canonical_version(version)
        release = next((r for r in releases if r.canonical_version == wanted), None)
        chosen = [f for f in files if f.version and canonical_version(f.version) == wanted]
        if request.get("only_docs"):
            chosen = [f for f in chosen if f.packagetype == "doczip"]
        elif request.get("no_docs"):
            chosen = [f for f in chosen if f.packagetype != "doczip"]
        if record is None or release is None or not chosen:
            raise NotFound(f"no release/files found for {name} {version} on {source.fullname}")
        return release, chosen

    async def _push_external(
        self, source: IndexRecord, name: str, version: str, request: dict[str, Any]
    ) -> list[list[Any]]:
        """Upload the release to another index through the legacy upload API (twine's way).

        An external index cannot take part in our transaction: files are sent one by one and the
        action log says which arrived; the first refusal stops the push with a 502 naming it.
        """
        if source.type != "stage":
            raise BadRequest("push works from stage indexes")
        posturl = str(request["posturl"])
        if not posturl.startswith(("http://", "https://")):
            raise BadRequest(f"posturl must be an http(s) URL, got {posturl!r}")
        try:
            check_url(posturl, self._policy)  # before anything is read or sent
        except OutboundRefused as exc:
            raise Forbidden(f"push to {posturl} refused: {exc.reason}") from exc
        user, password = request.get("username"), request.get("password")
        auth = (str(user), str(password or "")) if user else None
        release, chosen = await self._release(source, name, version, request)
        display = str(release.metadata.get("name") or name)
        log: list[list[Any]] = []
        # Release files first, then the doc zip, as devpi-client does.
        for f in sorted(chosen, key=lambda f: (f.packagetype == "doczip", f.filename)):
            assert f.sha256 is not None
            fields = _form_fields(display, release.version, release.metadata, f)
            path = await self._blobs.local(f.blob_sha256 or f.sha256)
            if path is None:
                raise PushFailed(f"the bytes of {f.filename} are missing from storage")
            try:
                status = await self._client.post_upload(
                    posturl, self._policy, fields, f.filename, path, auth
                )
            except UpstreamRefused as exc:
                raise Forbidden(f"push to {posturl} refused: {exc.reason}") from exc
            except UpstreamUnavailable as exc:
                raise PushFailed(
                    f"{posturl} failed for {f.filename}: {exc.reason}; "
                    f"pushed before it: {[entry[2] for entry in log]}"
                ) from exc
            what = "store_doczip" if f.packagetype == "doczip" else "upload"
            log.append([status, what, f.filename, "->", posturl])
            if status != 200:
                raise PushFailed(
                    f"{posturl} answered {status} for {f.filename}; "
                    f"pushed before it: {[entry[2] for entry in log[:-1]]}"
                )
        return log

    async def _check_conflicts(self, target: IndexRecord, chosen: list[FileRecord]) -> None:
        for f in chosen:
            existing = await self._db.read(project_rows.file_by_filename, target.id, f.filename)
            if existing is None or existing[0].sha256 == f.sha256:
                continue
            if not target.config.get("volatile", True):
                raise PushConflict(
                    f"{f.filename} already exists with other content on non-volatile "
                    f"{target.fullname}; nothing was pushed"
                )


def _check_source(identity: Identity, source: IndexRecord) -> None:
    """A push needs someone who may upload to the source index or manage it (owner, root)."""
    if identity.anonymous:
        raise Unauthorized(f"pushing from {source.fullname} needs authentication")
    if identity.user in ("root", source.user):
        return
    decision = acl.may_upload(identity, source.config.get("acl_upload", ()))
    if not decision.allowed:
        raise Forbidden(f"no permission to push from {source.fullname}: {decision.reason}")


def _store_push(
    tx: Transaction,
    target_id: int,
    project: str,
    display: str,
    version: str,
    metadata: dict[str, Any],
    files: list[FileRecord],
    pusher: str | None,
) -> dict[str, list[str]]:
    """Store the pushed release and files, with their tox results (as devpi's push copies
    them); the names of the tox results copied, by file."""
    project_id = project_rows.ensure_stage_project(tx.conn, target_id, project, display)
    release_rows.upsert_release(tx.conn, project_id, version, canonical_version(version), metadata)
    copied: dict[str, list[str]] = {}
    for f in files:
        new = NewFile(
            filename=f.filename,
            upload_time=f.upload_time,
            core_metadata_sha256=f.core_metadata_sha256,
            upstream_url=None,
            **{field: getattr(f, field) for field in _FILE_FIELDS},
        )
        project_rows.put_stage_file(tx.conn, target_id, project_id, new, pusher)
        stored = project_rows.file_by_filename(tx.conn, target_id, f.filename)
        if stored is not None and f.packagetype != "doczip":
            copied[f.filename] = toxresult_rows.copy(tx.conn, f.id, stored[0].id)
    tx.log(target_id, project, ChangeKind.PUSH)
    return copied
