"""The ledger's tables, as they were before migrations existed (DESIGN §6).

Revision ID: 0001
Revises: -
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("capability", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=71), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("capability", "name"),
    )
    op.create_table(
        "approvals",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("package", sa.String(length=71), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("envelope", sa.String(length=71), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_approvals_package"), "approvals", ["package"], unique=False)
    op.create_table(
        "checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.String(length=71), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    op.create_index(op.f("ix_events_kind"), "events", ["kind"], unique=False)
    op.create_index(op.f("ix_events_subject"), "events", ["subject"], unique=False)
    op.create_table(
        "head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("added_seq", sa.BigInteger(), nullable=False),
        sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("keyid"),
    )
    op.create_table(
        "lineage",
        sa.Column("child", sa.String(length=71), nullable=False),
        sa.Column("parent", sa.String(length=71), nullable=False),
        sa.PrimaryKeyConstraint("child", "parent"),
    )
    op.create_index(op.f("ix_lineage_child"), "lineage", ["child"], unique=False)
    op.create_index(op.f("ix_lineage_parent"), "lineage", ["parent"], unique=False)
    op.create_table(
        "packages",
        sa.Column("id", sa.String(length=71), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("capability", sa.String(length=64), nullable=False),
        sa.Column("registered_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_packages_capability"), "packages", ["capability"], unique=False)
    op.create_table(
        "revocations",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("package", sa.String(length=71), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_revocations_package"), "revocations", ["package"], unique=False)
    op.create_table(
        "signatures",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("package", sa.String(length=71), nullable=False),
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.String(length=71), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_signatures_package"), "signatures", ["package"], unique=False)


def downgrade() -> None:
    for table in (
        "signatures",
        "revocations",
        "packages",
        "lineage",
        "keys",
        "head",
        "events",
        "checkpoints",
        "approvals",
        "aliases",
    ):
        op.drop_table(table)
