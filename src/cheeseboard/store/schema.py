"""The metadata schema, in one place. Changes go through an Alembic migration as well.

Project search is not described here: its table (an SQLite FTS5 virtual table) and the triggers
that fill it live in migration 0004 only, because virtual tables and triggers are
dialect-specific SQL that SQLAlchemy's Table cannot express. store/search.py queries it.
"""

from __future__ import annotations

import secrets

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def new_uid() -> str:
    """A fresh account identity: what login and scoped tokens are bound to, so that deleting a
    user and creating one of the same name (even with the same password hash) kills old tokens."""
    return secrets.token_hex(16)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("pwhash", Text, nullable=False),
    # Random per account, never exported (ops/dump/export.py); NULL-able on SQLite only (0005).
    Column("uid", String(32), nullable=False, default=new_uid),
    Column("email", Text),
    Column("title", Text),
    Column("description", Text),
    Column("custom_data", JSON),
    Column("created", Float, nullable=False),
    Column("modified", Float),
    # Migration 0011: NULL for a local account, else the identity source that made it ("ldap",
    # "oidc"); those accounts have no usable local password.
    Column("auth_source", String(32)),
)

# Migration 0011 (issue 24): groups root manages for local users (``:group:NAME`` principals).
# Groups an identity source (LDAP, OIDC) reports come with each sign-in and are not stored.
groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text),
    Column("created", Float, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

indexes = Table(
    "indexes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("created", Float, nullable=False),
    UniqueConstraint("user_id", "name"),
)

# Scoped API tokens (to named indexes, with an expiry; ``scope`` "upload": read and upload,
# "read": read only). The token itself is signed and never stored; a row is what makes it valid,
# so deleting the row revokes it.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("description", Text),
    Column("indexes", JSON, nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    Column("scope", String(16), nullable=False, server_default="upload"),  # 0007
)

# Login tokens revoked before they expire (web sign-out): a digest of each token, kept until the
# token would have expired anyway. Every worker and node loads the set (services/auth.py).
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("expires", Float, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),  # PEP 503 normalized
    Column("display_name", String(255), nullable=False),
    Column("created", Float, nullable=False),
    # Mirror state: when upstream was last asked and what it said.
    Column("checked_at", Float),
    Column("found", Boolean, nullable=False, default=True),
    Column("upstream_etag", Text),
    Column("upstream_serial", Integer),
    Column("status", String(16)),  # PEP 792; NULL = active
    Column("status_reason", Text),
    UniqueConstraint("index_id", "name"),
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("version", String(128)),
    Column("packagetype", String(16), nullable=False),
    Column("sha256", String(64)),  # as the index advertises it; NULL when upstream gave none
    Column("size", Integer),
    Column("requires_python", Text),
    Column("yanked", Text),  # NULL = not yanked; "" = yanked without a reason
    Column("upload_time", String(32)),
    Column("core_metadata_sha256", String(64)),
    Column("upstream_url", Text),  # mirror files: where to fetch them
    Column("blob_sha256", String(64)),  # set once the bytes are in the blob store
    Column("position", Integer, nullable=False, default=0),
    Column("created", Float, nullable=False),
    Column("uploaded_by", String(64)),  # stage uploads: the user who sent the file
    UniqueConstraint("index_id", "filename"),
    Index("ix_files_project", "project_id"),
)

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("version", String(128), nullable=False),  # as uploaded
    Column("canonical_version", String(128), nullable=False),  # for lookups: 1.0 == 1.0.0
    Column("metadata", JSON, nullable=False),  # core metadata fields read from the artifact
    Column("yanked", Text),  # NULL = not yanked; "" = yanked without a reason (PEP 592)
    Column("created", Float, nullable=False),
    UniqueConstraint("project_id", "canonical_version"),
)

# When a cached mirror file was last served (retention, issue 23): written in batches, never
# exported; least recently used files are evicted first under --mirror-cache-size.
file_access = Table(
    "file_access",
    metadata,
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
    Column("last_used", Float, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("created", Float, nullable=False),
)

changelog = Table(
    "changelog",
    metadata,
    Column("serial", Integer, primary_key=True, autoincrement=True),
    Column("created", Float, nullable=False),
    Column("index_id", Integer),
    Column("project", String(255)),
    Column("kind", String(32), nullable=False),
)

# Issue 21 (migration 0008): the supply-chain guard.
blocks = Table(
    "blocks",
    metadata,
    Column("id", Integer, primary_key=True),
    # NULL: server-wide; else this index and every index inheriting it.
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=True),
    Column("project", String(255)),  # PEP 503 normalized; NULL for a sha256-only block
    Column("specifier", Text),  # PEP 440 specifier set ("==1.0", "<2,>=1.5"); NULL = all
    Column("filename", String(255)),
    Column("sha256", String(64)),
    Column("reason", Text, nullable=False),
    Column("author", String(64), nullable=False),
    Column("source", String(128), nullable=False, default="manual"),  # or "osv:MAL-…"
    Column("created", Float, nullable=False),
    Index("ix_blocks_project", "project"),
)

advisories = Table(
    "advisories",
    metadata,
    Column("id", String(128), primary_key=True),  # the OSV id: PYSEC-…, GHSA-…, MAL-…
    Column("project", String(255), nullable=False),  # PEP 503 normalized
    Column("summary", Text),
    Column("details", Text),
    Column("aliases", JSON, nullable=False),
    Column("affected", JSON, nullable=False),  # {"versions": [...], "ranges": [...]} as in OSV
    Column("fixed", JSON, nullable=False),  # versions that fix it
    Column("link", Text),
    Column("modified", String(40)),
    Column("withdrawn", String(40)),
    Column("imported", Float, nullable=False),
    Index("ix_advisories_project", "project"),
)

# Issue 22 (migration 0009): tox results attached to release files (devpi test). The JSON as
# posted, size-limited (services/toxresults.py), so it lives here rather than in the blob store.
toxresults = Table(
    "toxresults",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),  # <release file>.toxresult-<time>-<n>
    Column("data", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploaded_by", String(64)),  # NULL: anonymous
    Column("created", Float, nullable=False),
    UniqueConstraint("file_id", "name"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64)),  # NULL: anonymous or the server itself
    Column("action", String(64), nullable=False),  # e.g. "user-create", "block-add"
    Column("target", Text),  # e.g. "alice", "alice/dev", "alice/dev/foo==1.0"
    Column("detail", JSON, nullable=False),
    Column("client", String(64)),  # the client address, when a request made the change
    Index("ix_audit_log_at", "at"),
)

# Migration 0011 (issue 24): trusted publishing. Per index, the OIDC issuer and audience and the
# claims (name -> required value) a CI's ID token must carry to get a short-lived upload token.
trusted_publishers = Table(
    "trusted_publishers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("issuer", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("claims", JSON, nullable=False),
    Column("description", Text),
    Column("created", Float, nullable=False),
    Column("created_by", String(64)),
    Index("ix_trusted_publishers_index_id", "index_id"),
)

# sha256 of (issuer, jti) of each ID token exchanged, kept until it expires: one use per token
# across workers and nodes.
oidc_token_uses = Table(
    "oidc_token_uses",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("expires", Float, nullable=False),
    Index("ix_oidc_token_uses_expires", "expires"),
)

server_info = Table(
    "server_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
