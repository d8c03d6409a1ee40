"""Identity (issue 24): local groups, trusted publishers, used OIDC token ids, where a user
account comes from.

- ``groups`` and ``group_members``: groups root manages for local users; ``:group:NAME`` in
  ``acl_upload``, ``acl_read`` and ``--restrict-modify`` names them. Groups an identity source
  (LDAP, OIDC) reports are not stored: they come with each sign-in.
- ``trusted_publishers``: per index, the OIDC issuer, audience and the claims a CI's ID token
  must carry to get a short-lived upload token for it (PyPI's trusted publishing).
- ``oidc_token_uses``: the (issuer, jti) digests of ID tokens already exchanged, until they
  expire, so that a token is exchanged once on every worker and node.
- ``users.auth_source``: NULL for a local account, else the source that made it (``ldap``,
  ``oidc``); such accounts have no usable local password.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "trusted_publishers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("audience", sa.Text, nullable=False),
        sa.Column("claims", sa.JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(64)),
    )
    op.create_index("ix_trusted_publishers_index_id", "trusted_publishers", ["index_id"])
    op.create_table(
        "oidc_token_uses",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_oidc_token_uses_expires", "oidc_token_uses", ["expires"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("auth_source", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("auth_source")
    op.drop_index("ix_oidc_token_uses_expires", table_name="oidc_token_uses")
    op.drop_table("oidc_token_uses")
    op.drop_index("ix_trusted_publishers_index_id", table_name="trusted_publishers")
    op.drop_table("trusted_publishers")
    op.drop_table("group_members")
    op.drop_table("groups")
